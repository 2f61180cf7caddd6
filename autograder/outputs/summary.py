"""The class summary of a batch run: ``index.html`` (what the class got wrong) and ``grades.csv``.

Built only from the ``results.json`` files the batch wrote (so kept and new grades count
alike): per assignment the score histogram, mean and median, and each check's pass rate
from the most failed down; a table of every student with links to their reports.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from autograder.outputs.report import _TEMPLATES, write_atomic


@dataclass
class CheckRate:
    name: str
    title: str
    points: float
    visibility: str
    passed: int = 0
    total: int = 0
    failures: Counter = field(default_factory=Counter)  # first line of the failure message -> students

    @property
    def rate(self) -> float:
        return self.passed / self.total if self.total else 0.0

    def common_failure(self) -> tuple[str, int] | None:
        """The failure message most students got (its first line), with how many got it."""
        return self.failures.most_common(1)[0] if self.failures else None


@dataclass
class AssignmentStats:
    name: str
    title: str
    max_score: float
    scores: dict[str, float] = field(default_factory=dict)  # student -> score
    checks: dict[str, CheckRate] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores.values()) if self.scores else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.scores.values()) if self.scores else 0.0

    def most_failed_first(self) -> list[CheckRate]:
        return sorted(self.checks.values(), key=lambda c: (c.rate, -c.points, c.name))


def collect(summary) -> dict[str, AssignmentStats]:
    """Per assignment, the stats of every pair graded now or kept from an earlier run."""
    from autograder.spec import load_spec

    stats: dict[str, AssignmentStats] = {}
    for student, assignment in sorted(summary.graded + summary.reused):
        try:
            document = json.loads((summary.out_dir / student / assignment / "results.json").read_text())
        except (OSError, ValueError):
            summary.problems.append((student, f"{assignment}: its results.json could not be read back"))
            continue
        if assignment not in stats:
            stats[assignment] = AssignmentStats(assignment, load_spec(assignment).title, document["max_score"])
        entry = stats[assignment]
        entry.scores[student] = document["score"]
        for test in document["tests"]:
            name = test["tags"][0]
            rate = entry.checks.setdefault(name, CheckRate(name, test["name"].split(": ", 1)[-1],
                                                           test["max_score"], test["visibility"]))
            rate.total += 1
            if test["status"] == "passed":
                rate.passed += 1
            else:
                first_line = (test["output"].strip().splitlines() or ["(no message)"])[0]
                rate.failures[first_line.removeprefix("Failed: ")[:200]] += 1
    return {name: stats[name] for name in summary.assignments if name in stats}


def write_summary(summary) -> dict[str, Path]:
    """Write ``index.html`` and ``grades.csv`` into the batch's output folder."""
    stats = collect(summary)
    paths = {"index": summary.out_dir / "index.html", "grades": summary.out_dir / "grades.csv"}
    write_atomic(paths["grades"], grades_csv(summary.students, stats))
    write_atomic(paths["index"], render_index(summary, stats))
    return paths


def grades_csv(students: list[str], stats: dict[str, AssignmentStats]) -> str:
    """One row per student, one column per assignment (blank: nothing graded), and the total."""
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["student", *stats, "total"])
    for student in students:
        scores = [stats[name].scores.get(student) for name in stats]
        writer.writerow([_cell(student), *("" if s is None else f"{s:g}" for s in scores),
                         f"{sum(s for s in scores if s is not None):g}"])
    return stream.getvalue()


def _cell(text: str) -> str:
    """A spreadsheet would run a cell starting with = + - @ as a formula."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


def render_index(summary, stats: dict[str, AssignmentStats]) -> str:
    link = {(student, name): {"report": f"{quote(student)}/{quote(name)}/report.html",
                              "student": f"{quote(student)}/{quote(name)}/student_report.html"}
            for name, entry in stats.items() for student in entry.scores}
    failed = set(summary.failed)
    return _TEMPLATES.get_template("summary.html.j2").render(
        out_dir=str(summary.out_dir), generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        assignments=[{"stats": entry, "histogram": histogram_png(entry), "checks": entry.most_failed_first()}
                     for entry in stats.values()],
        students=summary.students, links=link, failed=failed, problems=summary.problems,
        counts={"graded": len(summary.graded), "kept": len(summary.reused), "failed": len(summary.failed)},
        total_max=sum(entry.max_score for entry in stats.values()),
    )


def histogram_png(entry: AssignmentStats) -> str:
    """The score distribution as a base64 PNG (embedded: the page needs no other file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 2.4), dpi=100)
    try:
        bins = min(20, max(int(entry.max_score), 1))
        axes.hist(list(entry.scores.values()), bins=bins, range=(0, entry.max_score), color="#4a7bd0",
                  edgecolor="white")
        axes.axvline(entry.median, color="#333", linestyle="--", linewidth=1, label=f"median {entry.median:g}")
        axes.set_xlabel(f"score (out of {entry.max_score:g})")
        axes.set_ylabel("students")
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.legend(loc="upper left", frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()
