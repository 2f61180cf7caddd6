"""Stage 6, report: results.json (Gradescope schema), HTML pages, and a terminal summary.

Every file is written atomically (temporary file in the same folder, then rename), so a
crash never leaves a half-written report.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from pathlib import Path

import jinja2
from rich.console import Console
from rich.table import Table

from autograder.outputs.score import GradeResult

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("autograder.outputs", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)
_HIDDEN_UNTIL = {"hidden": "hidden from students", "after_due_date": "shown after the due date",
                 "after_published": "shown once grades are published"}


def write_reports(result: GradeResult, out_dir: Path) -> dict[str, Path]:
    """Write results.json, report.html (instructor view) and student_report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render_reports(result).items():
        write_atomic(out_dir / name, text)
    return {"results": out_dir / "results.json", "report": out_dir / "report.html",
            "student_report": out_dir / "student_report.html"}


def render_reports(result: GradeResult) -> dict[str, str]:
    """File name -> text of the three reports (results.json last: it records the report time)."""
    started = time.perf_counter()
    pages = {"report.html": render_html(result, view="instructor"),
             "student_report.html": render_html(result, view="student")}
    result.facts["timings"]["report_s"] = time.perf_counter() - started
    return {**pages, "results.json": json.dumps(results_json(result), indent=2)}


def results_json(result: GradeResult) -> dict:
    """The Gradescope results document (see the schema in autograder/outputs/schemas/)."""
    tests = []
    for number, outcome in enumerate(result.outcomes, start=1):
        tests.append({
            "name": f"{outcome.spec.name}: {outcome.spec.title}",
            "number": str(number),
            "score": outcome.score,
            "max_score": float(outcome.spec.points),
            "status": "passed" if outcome.passed else "failed",
            "output": outcome.text(),
            "output_format": "text",
            "tags": [outcome.spec.name, *outcome.spec.tags],
            "visibility": outcome.spec.visibility,
        })
    facts = {key: value for key, value in result.facts.items() if key != "import_output"}
    if result.analysis is not None:
        facts["written_analysis"] = result.analysis.summary()
    return {
        "score": result.score,
        "max_score": float(result.max_score),
        "execution_time": round(result.facts["timings"].get("total_s", 0.0), 3),
        "output": overall_text(result),
        "output_format": "text",
        "visibility": result.spec.results_visibility,
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"assignment": result.spec.name, **facts},
    }


def overall_text(result: GradeResult) -> str:
    lines = list(result.notices) or ["Every check ran; see each test for details."]
    if result.skipped:
        lines.append(f"Not run ({len(result.skipped)}; the grader runs definitions only):")
        lines += [f"  {line}" for line in result.skipped[:50]]
        lines += [f"  ... and {len(result.skipped) - 50} more"] if len(result.skipped) > 50 else []
    return "\n".join(lines)


def render_html(result: GradeResult, *, view: str) -> str:
    rows = []
    for outcome in result.outcomes:
        hidden = view == "student" and outcome.spec.visibility != "visible"
        rows.append({
            "name": outcome.spec.name, "title": outcome.spec.title, "points": outcome.spec.points,
            "score": None if hidden else outcome.score, "passed": outcome.passed,
            "hidden": _HIDDEN_UNTIL.get(outcome.spec.visibility) if hidden else None,
            "visibility": outcome.spec.visibility, "message": outcome.verdict.message,
            "expected": outcome.verdict.expected, "got": outcome.verdict.got,
            "stdout": outcome.stdout, "seconds": outcome.seconds,
            "details": outcome.verdict.details if view == "instructor" else None,
            "figures": [base64.b64encode(png).decode() for png in outcome.verdict.figures],
        })
    shown = [row for row in rows if row["hidden"] is None]
    return _TEMPLATES.get_template("report.html.j2").render(
        view=view, title=result.spec.title, assignment=result.spec.name,
        submission=result.submission.name, rows=rows, notices=result.notices, skipped=result.skipped,
        score=sum(row["score"] for row in shown), max_score=sum(row["points"] for row in shown),
        complete=len(shown) == len(rows), facts=result.facts,
        worker_output=result.worker_output if view == "instructor" else "",
        analysis=result.analysis if view == "instructor" else None,
    )


def print_summary(result: GradeResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{result.spec.title} — {result.submission.name}", show_lines=False)
    table.add_column("check")
    table.add_column("points", justify="right")
    table.add_column("", justify="center")
    table.add_column("message", overflow="fold")
    for outcome in result.outcomes:
        mark = "[green]✔[/]" if outcome.passed else "[red]✘[/]"
        table.add_row(outcome.spec.name, f"{outcome.score:g}/{outcome.spec.points:g}", mark,
                      outcome.verdict.message[:300])
    console.print(table)
    for notice in result.notices:
        console.print(f"[yellow]•[/] {notice}")
    if result.skipped:
        console.print(f"[yellow]•[/] {len(result.skipped)} top-level statement(s) not run (the grader runs "
                      "definitions only); the report lists them.")
    console.print(f"[bold]Score: {result.score:g} / {result.max_score:g}[/]  "
                  f"({result.facts['timings'].get('total_s', 0):.1f} s, device {result.facts['device']})")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes 0600; a report is read by others
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
