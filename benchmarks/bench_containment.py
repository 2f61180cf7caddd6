"""What the protections add to a worker's start-up, median of N runs, next to a torch import.

    nox -s bench                # or: python benchmarks/bench_containment.py --runs 10

1. A bare ``python -I -S -c pass`` started four ways: directly; under the warden (subreaper,
   user drop); under the warden with a fresh cgroup (made and removed each time); under the
   warden, in bubblewrap, with the cgroup (and, as root, the warden's staging mounts) — every
   layer this machine offers. The differences are the protections' own cost.
2. A real worker as the grader starts it (``run_in_worker`` on a one-check job), with every
   layer and with AUTOGRADER_SANDBOX=off AUTOGRADER_CGROUPS=off: start-up to its first message
   without the torch import, and the torch import itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medians import print_medians  # benchmarks/medians.py (scripts run from this folder)

from autograder.sandbox import containment
from autograder.sandbox.cgroups import WorkerCgroup
from autograder.sandbox.isolate import WorkerJob, run_in_worker
from autograder.sandbox.privileges import hand_over
from autograder.spec import Limits

CHECKS = '''
from autograder.toolkit.check import Check


class Answer(Check):
    name = "answer"
    needs_reference = False

    @staticmethod
    def probe(student, inputs, device):
        return student.answer()
'''


def bare_starts(runs: int) -> dict[str, list[float]]:
    found = containment.layers()
    command = [sys.executable, "-I", "-S", "-c", "pass"]
    samples: dict[str, list[float]] = {"direct": [], "warden": []}
    if found.cgroups:
        samples["warden + cgroup"] = []
    if found.bwrap:
        samples["warden + cgroup + sandbox" if found.cgroups else "warden + sandbox"] = []
    for _ in range(runs):
        for label in samples:
            scratch = Path(tempfile.mkdtemp(prefix="autograder-bench-"))
            (scratch / "work").mkdir()
            (scratch / "submission").mkdir()
            if found.user.uid is not None and "sandbox" in label:
                hand_over(scratch, found.user)
            started = time.perf_counter()
            if label == "direct":
                subprocess.run(command, check=True)
            else:
                group = (WorkerCgroup(found.cgroups, memory_mb=4096, max_processes=64)
                         if "cgroup" in label else None)
                plan = (containment.plan_launch(scratch, tmp_mb=256, device="cpu") if "sandbox" in label
                        else containment.SandboxPlan([], [], None, None, False))
                subprocess.run(containment.warden_command(plan, command, scratch / "work",
                                                          group.procs_files if group else []), check=True)
                if group:
                    group.kill()
                    group.remove()
            samples[label].append(time.perf_counter() - started)
            shutil.rmtree(scratch, ignore_errors=True)
    return samples


def worker_starts(runs: int, folder: Path) -> dict[str, list[float]]:
    (folder / "tiny").mkdir(exist_ok=True)
    (folder / "tiny" / "checks.py").write_text(CHECKS)
    (folder / "tiny.py").write_text("def answer():\n    return 42\n")
    job = WorkerJob(assignment="tiny", assignment_folder=folder / "tiny", submission_file=folder / "tiny.py",
                    inputs={"answer": {}}, timeouts={"answer": 30.0}, seed=0, device="cpu",
                    limits=Limits(import_timeout_s=60))
    samples: dict[str, list[float]] = {}
    levels = {"every layer": {}, "sandbox and cgroup off": {containment.SANDBOX_VARIABLE: "off",
                                                            containment.CGROUPS_VARIABLE: "off"}}
    for _ in range(runs):
        for label, settings in levels.items():
            saved = {name: os.environ.get(name) for name in settings}
            os.environ.update(settings)
            containment.layers.cache_clear()
            try:
                run = run_in_worker(job)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
                containment.layers.cache_clear()
            assert run.probes["answer"]["value"] == 42, run
            samples.setdefault(f"{label}: start-up", []).append(run.timings["worker_start_s"])
            samples.setdefault(f"{label}: torch import", []).append(run.timings["torch_import_s"])
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print("protections here:", *containment.describe(containment.layers(), memory_mb=4096, max_processes=64,
                                                        tmp_mb=256, seccomp_note=containment.layers().seccomp_note),
          sep="\n  ")
    bare = bare_starts(args.runs)
    direct = statistics.median(bare["direct"])
    print_medians(f"A bare Python start, {args.runs} runs", bare, first="started", compare="added vs direct",
                  compared=lambda label, median: f"{(median - direct) * 1000:+.0f} ms")
    with tempfile.TemporaryDirectory() as folder:
        workers = worker_starts(args.runs, Path(folder))
    torch_import = statistics.median(workers["every layer: torch import"])
    print_medians(f"A worker started by the grader, {args.runs} runs", workers, first="worker",
                  compare="share of a torch import", compared=lambda label, median: f"{median / torch_import:.0%}")


if __name__ == "__main__":
    main()
