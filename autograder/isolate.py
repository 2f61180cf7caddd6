"""Stage 2, isolate: run the probes in a worker subprocess and survive whatever it does.

The grading process never imports the submission. It writes a job file, starts
:mod:`autograder.worker` in its own session with a scratch folder as working directory, and
reads events from a dedicated pipe. Each check has its own time cap counted from its
``start`` event; memory is capped (address space in the worker, RSS watchdog here); the
worker's own stdout/stderr is kept up to a cap. A worker that exits, crashes, hangs or blows
its memory is killed with its whole process tree, the check it was running fails with a
plain-words message, and a fresh worker resumes with the checks that remain.

When the grader runs as root (a Gradescope container), the worker runs as an unprivileged
user instead (:func:`worker_user`): ``$AUTOGRADER_WORKER_USER``, else ``autograder-student``
where it exists, else ``nobody``. Where that user could not even start Python (an interpreter
under a closed home folder, as with pyenv in /root), the worker keeps root and the report says
why (:func:`protections`).
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from autograder import wire
from autograder.privileges import WorkerUser, hand_over, worker_user
from autograder.spec import Limits

_TICK_S = 0.1
_BETWEEN_CHECKS_S = 30.0  # encoding one result and starting the next probe
PROTECTIONS = (
    "separate worker process (the grader never imports the submission)",
    "per-check wall-clock limit, whole process tree killed on timeout",
    "memory limit (address-space cap on CPU, resident-memory watchdog)",
    "output cap (captured text and returned data)",
    "scratch working directory, minimal environment",
)


@dataclass
class WorkerJob:
    assignment: str
    assignment_folder: Path  # holds checks.py / hidden_checks.py, whose probes the worker runs
    submission_file: Path  # the submitted .py or .ipynb
    inputs: dict[str, dict]  # check name -> inputs, in run order
    timeouts: dict[str, float]
    seed: int
    device: str
    limits: Limits
    helper_files: list[Path] = field(default_factory=list)  # other .py files of a folder submission
    submission_text: str | None = None  # what to import as <stem>.py (its definitions); None: the file as is
    helper_texts: dict[str, str] = field(default_factory=dict)  # helper file name -> its definitions


@dataclass
class WorkerRun:
    probes: dict[str, dict] = field(default_factory=dict)  # check -> probe result (see probe.py)
    import_error: dict | None = None
    import_stdout: str = ""
    output: str = ""  # what the worker printed outside the probes' own capture
    workers_started: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    incidents: list[str] = field(default_factory=list)


def run_in_worker(job: WorkerJob) -> WorkerRun:
    """Run every probe of ``job``; always returns, whatever the submission does."""
    run = WorkerRun()
    pending = list(job.inputs)
    user = worker_user(job.assignment_folder)
    scratch = Path(tempfile.mkdtemp(prefix="autograder-"))
    try:
        submission = _stage_submission(job, scratch)
        (scratch / "work").mkdir()
        if user.uid is not None:
            hand_over(scratch, user)
        while pending:
            worker = _Worker(job, pending, submission, scratch, run.workers_started, user)
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


def _drive(worker: _Worker, job: WorkerJob, pending: list[str], run: WorkerRun) -> bool:
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
                run.timings.setdefault("worker_start_s", now - worker.started - payload["torch_import_s"])
                run.timings.setdefault("torch_import_s", payload["torch_import_s"])
            elif event == "imported":
                imported = True
                run.import_stdout = payload.get("stdout", "")
                run.timings.setdefault("submission_import_s", payload.get("seconds", 0.0))
                if not payload.get("ok"):
                    run.import_error = payload.get("error")
                    return True
                deadline = now + _BETWEEN_CHECKS_S
            elif event == "start" and payload.get("check") in pending:
                current = payload["check"]
                deadline = now + job.timeouts[current]
            elif event == "result" and payload.get("check") == current:
                run.probes[current] = payload["result"]
                pending.remove(current)
                current = None
                deadline = now + _BETWEEN_CHECKS_S
            elif event == "done":
                return not pending
        elif kind in ("eof", "bad"):
            trouble = worker.death_text(payload)
        if trouble is None and worker.memory_mb() > job.limits.memory_mb:
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


class _Worker:
    """One worker subprocess with reader threads for its control pipe and its output."""

    def __init__(self, job: WorkerJob, checks: list[str], submission: Path, scratch: Path, index: int,
                 user: WorkerUser):
        job_file = scratch / f"job-{index}.bin"
        job_file.write_bytes(wire.pack_frame({
            "assignment": job.assignment,
            "assignment_folder": str(job.assignment_folder),
            "submission_file": str(submission),
            "checks": [{"name": name, "inputs": job.inputs[name]} for name in checks],
            "seed": job.seed, "device": job.device,
            "memory_mb": job.limits.memory_mb, "torch_threads": job.limits.torch_threads,
            "stdout_cap": job.limits.output_kb * 1024, "result_bytes": job.limits.result_mb * 2**20,
        }))
        job_file.chmod(0o644)  # read by the worker, which may run as another user
        drop = {} if user.uid is None else {"user": user.uid, "group": user.gid, "extra_groups": []}
        read_fd, write_fd = os.pipe()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-s", "-c", _BOOTSTRAP, str(job_file), str(write_fd)],
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=scratch / "work", env=_worker_env(job, scratch),
            start_new_session=True, **drop)
        os.close(write_fd)
        self._events: queue.Queue = queue.Queue()
        self._output_cap = job.limits.output_kb * 1024
        self._output = bytearray()
        self._output_dropped = 0
        self._result_cap = job.limits.result_mb * 2**20
        self._control = os.fdopen(read_fd, "rb")
        threading.Thread(target=self._read_control, daemon=True).start()
        self._output_thread = threading.Thread(target=self._read_output, daemon=True)
        self._output_thread.start()
        self._ps = psutil.Process(self.proc.pid)

    def _read_control(self) -> None:
        try:
            while (frame := wire.read_frame(self._control, self._result_cap)) is not None:
                if not isinstance(frame, dict):
                    raise wire.WireError("a message that is not a mapping")
                self._events.put(("frame", frame))
            self._events.put(("eof", None))
        except (wire.WireError, OSError) as error:
            self._events.put(("bad", str(error)))

    def _read_output(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            room = self._output_cap - len(self._output)
            self._output += chunk[:max(room, 0)]
            self._output_dropped += max(len(chunk) - max(room, 0), 0)

    def next_event(self, timeout: float):
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return ("idle", None)

    def memory_mb(self) -> float:
        try:
            tree = [self._ps, *self._ps.children(recursive=True)]
            return sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20
        except psutil.Error:
            return 0.0

    def death_text(self, bad_message: str | None) -> str:
        if bad_message:
            return f"sent back data the grader could not read ({bad_message})"
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "closed its connection to the grader"
        if code < 0:
            name = signal.Signals(-code).name
            why = {"SIGKILL": " (often the machine running out of memory)",
                   "SIGSEGV": " (a crash inside a library, often from running out of memory)"}.get(name, "")
            return f"was killed by {name}{why}"
        return (f"exited with code {code} before finishing; remove calls to exit(), sys.exit() "
                "or os._exit() from your code")

    def kill(self) -> None:
        """Kill the worker and every descendant, including ones that left its session."""
        try:
            tree = [self._ps, *self._ps.children(recursive=True)]
        except psutil.Error:
            tree = []
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for process in tree:
            try:
                process.kill()
            except psutil.Error:
                pass
        self.proc.wait()
        self._output_thread.join(timeout=2)

    def output(self) -> str:
        text = self._output.decode("utf-8", errors="replace")
        if self._output_dropped:
            text += f"\n[... {self._output_dropped} more bytes of output not kept]"
        return text


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


def protections(assignment_folder: Path | None = None) -> list[str]:
    """The protections in force, ending with the user the student's code runs as."""
    return [*PROTECTIONS, worker_user(assignment_folder).line]


def _worker_env(job: WorkerJob, scratch: Path) -> dict[str, str]:
    threads = str(job.limits.torch_threads)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch / "work"),
        "TMPDIR": str(scratch / "work"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(scratch / "work" / ".matplotlib"),
        "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads,
    }
    if job.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# The worker imports the grader's package from where this process found it, without putting
# the repository (and its reference solutions) on the student's import path.
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_BOOTSTRAP = (
    "import sys, time; t = time.perf_counter(); import torch; t = time.perf_counter() - t; "
    f"sys.path.insert(0, {_PACKAGE_PARENT!r}); import autograder.worker as w; "
    "import autograder.check, autograder.probe, autograder.wire; "
    f"sys.path.remove({_PACKAGE_PARENT!r}); w.main(sys.argv[1:], torch_import_s=t)"
)
