"""Wall time of grading each assignment's reference, median of N runs, split by stage.

    nox -s bench                # or: python benchmarks/bench_grade.py --runs 5 [--assignment NAME ...]

Stages: worker start (process spawn, job file, check modules), torch import in the worker,
submission import, checks (probes in the worker), reference (same probes on the reference in
the grading process), verdicts, report (results.json + two HTML pages). "cold CLI" is a whole
`python -m autograder grade` process, including the grader's own torch import.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medians import print_medians  # benchmarks/medians.py (scripts run from this folder)

from autograder.outputs.report import write_reports
from autograder.pipeline import grade

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["worker_start_s", "torch_import_s", "submission_import_s", "checks_s", "reference_s",
          "verdicts_s", "report_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--assignment", nargs="*", default=None, help="default: every assignment")
    args = parser.parse_args()
    names = args.assignment or sorted(p.parent.name for p in (ROOT / "assignments").glob("*/assignment.toml"))
    for name in names:
        bench(name, args.runs)


def bench(assignment: str, runs: int) -> None:
    reference = ROOT / "solutions" / f"{assignment}.py"
    samples: dict[str, list[float]] = {stage: [] for stage in [*STAGES, "in-process total", "cold CLI"]}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(runs):
            started = time.perf_counter()
            result = grade(assignment, reference, device="cpu")
            write_reports(result, Path(out))
            samples["in-process total"].append(time.perf_counter() - started)
            for stage in STAGES:
                samples[stage].append(result.facts["timings"].get(stage, 0.0))
            assert result.score == result.max_score, "the reference must score full marks"
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "autograder", "grade", assignment, str(reference),
                            "--out", out, "--device", "cpu", "--quiet"], check=True)
            samples["cold CLI"].append(time.perf_counter() - started)

    total = statistics.median(samples["in-process total"])
    print_medians(f"grading the {assignment} reference: median of {runs} runs (CPU)", samples,
                  first="stage", compare="share of in-process total",
                  compared=lambda stage, median: f"{median / total:.0%}" if stage in STAGES else "")


if __name__ == "__main__":
    main()
