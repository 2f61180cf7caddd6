"""Stage 2, isolate: run the probes in a worker subprocess and survive whatever it does.

The grading process never imports the submission. It stages the submission in a scratch
folder and starts :mod:`autograder.sandbox.worker` (:mod:`autograder.sandbox.launch`: a job file with the
inputs and the checks' probe code, so the worker never opens the grader's files) under the
warden (:mod:`autograder.sandbox.warden`), with the protections :mod:`autograder.sandbox.containment` found on
this machine: bubblewrap namespaces, an unprivileged user, a cgroup, a socket filter. It reads
events from a dedicated pipe. Each check has its own
time cap counted from its ``start`` event; memory is capped (cgroup, address space, RSS
watchdog here); the worker's own stdout/stderr is kept up to a cap. A worker that exits,
crashes, hangs or blows its memory is killed with its whole process tree, the check it was
running fails with a plain-words message, and a fresh worker resumes with the checks that
remain. Each run lists the protections that were in force (``WorkerRun.protections``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from autograder.sandbox import containment
from autograder.sandbox.launch import BETWEEN_CHECKS_S, WorkerJob, WorkerProcess
from autograder.sandbox.privileges import hand_over
from autograder.spec import Limits
from autograder.toolkit.check import probe_sources

__all__ = ["WorkerJob", "WorkerRun", "planned_protections", "run_in_worker"]

_TICK_S = 0.1


@dataclass
class WorkerRun:
    probes: dict[str, dict] = field(default_factory=dict)  # check -> probe result (see probe.py)
    import_error: dict | None = None
    import_stdout: str = ""
    output: str = ""  # what the worker printed outside the probes' own capture
    workers_started: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    incidents: list[str] = field(default_factory=list)
    protections: list[str] = field(default_factory=list)  # what was in force (see containment.describe)


def planned_protections(limits: Limits) -> list[str]:
    """The protections a worker gets on this machine (the report's list when none ran)."""
    found = containment.layers()
    return containment.describe(found, memory_mb=limits.memory_mb, max_processes=limits.max_processes,
                                tmp_mb=limits.tmp_mb, seccomp_note=found.seccomp_note)


def run_in_worker(job: WorkerJob) -> WorkerRun:
    """Run every probe of ``job``; always returns, whatever the submission does."""
    run = WorkerRun(protections=planned_protections(job.limits))
    pending = list(job.inputs)
    found = containment.layers()
    sources = probe_sources(job.assignment_folder)
    scratch = Path(tempfile.mkdtemp(prefix="autograder-"))
    try:
        submission = _stage_submission(job, scratch)
        (scratch / "work").mkdir()
        if found.user.uid is not None:
            hand_over(scratch, found.user)
        plan = containment.plan_launch(scratch, tmp_mb=job.limits.tmp_mb, device=job.device)
        while pending:
            worker = WorkerProcess(job, pending, submission, scratch, run.workers_started, plan, sources)
            run.workers_started += 1
            try:
                stop = _drive(worker, job, pending, run)
            finally:
                worker.kill()
                run.output += worker.output()
            if stop:
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return run


def _drive(worker: WorkerProcess, job: WorkerJob, pending: list[str], run: WorkerRun) -> bool:
    """Consume one worker's events until it finishes or dies. True: nothing more to run."""
    current: str | None = None
    imported = started = False
    deadline = worker.started + job.limits.import_timeout_s
    while True:
        kind, payload = worker.next_event(_TICK_S)
        now = time.monotonic()
        trouble = None
        if kind == "frame":
            event = payload.get("event")
            if event == "hello":
                started = True
                if payload.get("seccomp") is not None:  # the filter was refused after all
                    found = containment.layers()
                    run.protections = containment.describe(
                        found, memory_mb=job.limits.memory_mb, max_processes=job.limits.max_processes,
                        tmp_mb=job.limits.tmp_mb, seccomp_note=str(payload["seccomp"]))
                run.timings.setdefault("worker_start_s", now - worker.started - payload["torch_import_s"])
                run.timings.setdefault("torch_import_s", payload["torch_import_s"])
            elif event == "imported":
                imported = True
                run.import_stdout = payload.get("stdout", "")
                run.timings.setdefault("submission_import_s", payload.get("seconds", 0.0))
                if not payload.get("ok"):
                    run.import_error = payload.get("error")
                    return True
                deadline = now + BETWEEN_CHECKS_S
            elif event == "start" and payload.get("check") in pending:
                current = payload["check"]
                deadline = now + job.timeouts[current]
            elif event == "result" and payload.get("check") == current:
                run.probes[current] = payload["result"]
                pending.remove(current)
                current = None
                deadline = now + BETWEEN_CHECKS_S
            elif event == "done":
                return not pending
        elif kind in ("eof", "bad"):
            trouble = worker.death_text(payload)
        if trouble is None and worker.memory_mb() > job.limits.memory_mb:  # where no cgroup caps it
            trouble = f"used more than the {job.limits.memory_mb} MB memory limit"
        if trouble is None and now > deadline:
            trouble = _timeout_text(current, job, imported)
        if trouble:
            worker.kill()
            run.incidents.append(f"worker {run.workers_started}: {trouble}"
                                 + (f" (during check {current})" if current else ""))
            return _after_death(trouble, current, imported, started, pending, run)


def _after_death(trouble: str, current: str | None, imported: bool, started: bool, pending: list[str],
                 run: WorkerRun) -> bool:
    if not started:  # before the submission was even touched: the grader's own problem
        run.import_error = {"type": "WorkerStartFailed", "message": trouble, "where": None, "traceback": "",
                            "hint": f"the grading worker failed to start (it {trouble}); this is not "
                                    "your code's fault, and the instructor sees the details"}
        return True
    if not imported:
        run.import_error = {"type": "WorkerDied", "message": trouble, "where": None, "traceback": "",
                            "hint": f"while importing your submission the grading process {trouble}. "
                                    "Top-level code runs at import: move training loops, exit() "
                                    "calls and long computations under `if __name__ == \"__main__\":`"}
        return True
    victim = current or pending[0]  # dying between checks still costs the next one: no endless restarts
    run.probes[victim] = {"ok": False, "stdout": "", "seconds": 0.0, "error": {
        "type": "WorkerDied", "message": trouble, "where": None, "traceback": "",
        "hint": f"while this check ran, the grading process {trouble}"}}
    pending.remove(victim)
    return not pending


def _timeout_text(current: str | None, job: WorkerJob, imported: bool) -> str:
    if current:
        return (f"did not finish within this check's {job.timeouts[current]:g} s limit; look for an "
                "infinite loop or far more work than the task needs")
    if not imported:
        return (f"did not finish importing within {job.limits.import_timeout_s:g} s; top-level code "
                "(training, loops, input()) runs at import")
    return "stalled between two checks"


def _stage_submission(job: WorkerJob, scratch: Path) -> Path:
    """Copy the helper modules and write the text to import as ``<stem>.py`` into the scratch
    area (originals stay intact)."""
    target = scratch / "submission"
    target.mkdir()
    for path in job.helper_files:
        if path.name in job.helper_texts:
            (target / path.name).write_text(job.helper_texts[path.name], encoding="utf-8")
        else:
            shutil.copy2(path, target / path.name)
    staged = target / f"{job.submission_file.stem}.py"
    if job.submission_text is None:
        shutil.copy2(job.submission_file, staged)
    else:
        staged.write_text(job.submission_text, encoding="utf-8")
    return staged
