"""grade-all on a class of identical students: wall time with 1 and 2 workers, speed-up, and
the per-job overhead beyond the reference's own compute.

    python benchmarks/bench_batch.py [--copies 8] [--workers 1 2] [--assignments NAME ...]

Every student hands in the reference of every assignment (``--copies`` students). Each worker
count grades the whole class from scratch (``--force``) in one run; the speed-up is measured
against the first worker count of the same run. "Own compute" is the time the reference's
functions ran inside the worker (the ``checks_s`` stage); everything else a job costs is
overhead: the grading process, the student worker's start and torch import, the grader's own
run of the reference for expected values, verdicts, reports, and the pool.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autograder.commands.batch import grade_all
from autograder.commands.examples import assignment_names, reference_copies

STAGES = ["worker_start_s", "torch_import_s", "submission_import_s", "checks_s", "reference_s",
          "verdicts_s", "report_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--assignments", nargs="+", default=None, help="default: every assignment")
    args = parser.parse_args()
    names = args.assignments or assignment_names()
    console = Console(width=150)
    walls, timings = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        root = reference_copies(Path(scratch) / "class", args.copies, names)
        for workers in args.workers:
            out = Path(scratch) / f"out-{workers}"
            started = time.perf_counter()
            summary = grade_all(root, out, workers=workers, names=names, device="cpu", force=True,
                                console=Console(stderr=True, quiet=True))
            walls[workers] = time.perf_counter() - started
            assert summary.completed and len(summary.graded) == args.copies * len(names)
            timings[workers] = _timings(out, summary.graded)
            for student, name in summary.graded:
                document = json.loads((out / student / name / "results.json").read_text())
                assert document["score"] == document["max_score"], f"{student}/{name}: the reference lost points"
    jobs = args.copies * len(names)
    first = args.workers[0]
    table = Table(title=f"grade-all: {args.copies} copies of the reference × {len(names)} assignments = {jobs} jobs")
    for column in ("workers", "wall s", "s per job", f"speed-up vs {first}"):
        table.add_column(column, justify="right")
    for workers, wall in walls.items():
        table.add_row(str(workers), f"{wall:.1f}", f"{wall / jobs:.2f}", f"{walls[first] / wall:.2f}×")
    console.print(table)
    _overhead_table(console, names, timings[first], walls[first] / jobs, first)


def _timings(out: Path, pairs) -> dict[str, list[dict]]:
    """assignment -> the timings of each of its jobs (from results.json)."""
    found: dict[str, list[dict]] = {}
    for student, name in pairs:
        document = json.loads((out / student / name / "results.json").read_text())
        found.setdefault(name, []).append(document["extra_data"]["timings"])
    return found


def _overhead_table(console: Console, names, timings: dict[str, list[dict]], wall_per_job: float, workers: int) -> None:
    table = Table(title=f"per job, median over copies ({workers} worker{'s' if workers > 1 else ''}); "
                        "overhead = grade total − own compute")
    for column in ("assignment", "grade total s", "own compute s", "overhead s", "overhead share",
                   *(stage.removesuffix("_s") for stage in STAGES if stage != "checks_s")):
        table.add_column(column, justify="left" if column == "assignment" else "right")
    totals, computes = [], []
    for name in names:
        rows = timings[name]
        total = statistics.median(t["total_s"] for t in rows)
        compute = statistics.median(t.get("checks_s", 0.0) for t in rows)
        totals.append(total)
        computes.append(compute)
        table.add_row(name, f"{total:.2f}", f"{compute:.2f}", f"{total - compute:.2f}",
                      f"{(total - compute) / total:.0%}",
                      *(f"{statistics.median(t.get(stage, 0.0) for t in rows):.2f}" for stage in STAGES
                        if stage != "checks_s"))
    console.print(table)
    mean_total, mean_compute = statistics.fmean(totals), statistics.fmean(computes)
    console.print(f"mean over assignments: grade {mean_total:.2f} s, own compute {mean_compute:.2f} s, overhead in "
                  f"the grade {mean_total - mean_compute:.2f} s; wall per job {wall_per_job:.2f} s, so the pool and "
                  f"file writing add {wall_per_job * workers - mean_total:.2f} s per job")


if __name__ == "__main__":
    main()
