"""One worker process, started under the protections and read through its pipe.

:class:`WorkerProcess` writes the job file (inputs, the checks' probe code, the limits), starts
``python -c <bootstrap>`` under the warden (:mod:`autograder.sandbox.warden`) with the sandbox plan of
:mod:`autograder.sandbox.containment` and a cgroup of its own, and reads its two streams on threads:
frames on the control pipe (:mod:`autograder.sandbox.wire`) and its stdout/stderr, kept up to a cap.
:mod:`autograder.sandbox.isolate` decides what each event means.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from autograder.sandbox import containment, wire
from autograder.sandbox.cgroups import WorkerCgroup
from autograder.spec import Limits

BETWEEN_CHECKS_S = 30.0  # encoding one result and starting the next probe
_WARDEN_GRACE_S = 3.0  # for the warden to kill the tree and exit before force is used


@dataclass
class WorkerJob:
    assignment: str
    assignment_folder: Path  # holds checks / hidden_checks; their probe code goes in the job
    submission_file: Path  # the submitted .py or .ipynb
    inputs: dict[str, dict]  # check name -> inputs, in run order
    timeouts: dict[str, float]
    seed: int
    device: str
    limits: Limits
    helper_files: list[Path] = field(default_factory=list)  # other .py files of a folder submission
    submission_text: str | None = None  # what to import as <stem>.py (its definitions); None: the file as is
    helper_texts: dict[str, str] = field(default_factory=dict)  # helper file name -> its definitions
    substitutes: dict = field(default_factory=dict)  # substitutes.install's arguments: stand_ins, placeholders, offered



class WorkerProcess:
    """One worker subprocess with reader threads for its control pipe and its output."""

    def __init__(self, job: WorkerJob, checks: list[str], submission: Path, scratch: Path, index: int,
                 plan: containment.SandboxPlan, sources: dict[str, str]):
        sandboxed = bool(plan.argv_prefix)
        job_file = scratch / f"job-{index}.bin"
        job_file.write_bytes(wire.pack_frame({
            "assignment": job.assignment, "check_sources": sources,
            "submission_file": str(submission),
            "checks": [{"name": name, "inputs": job.inputs[name]} for name in checks],
            "seed": job.seed, "device": job.device, "substitutes": job.substitutes,
            "memory_mb": job.limits.memory_mb, "torch_threads": job.limits.torch_threads,
            "stdout_cap": job.limits.output_kb * 1024, "result_bytes": job.limits.result_mb * 2**20,
            "cpu_s": _cpu_budget_s(job, checks), "file_mb": job.limits.file_mb,
            # RLIMIT_NPROC counts every process of a user: only where the worker's user is its own
            "max_processes": job.limits.max_processes if sandboxed or plan.uid is not None else None,
        }))
        job_file.chmod(0o644)  # read by the worker, which may run as another user
        self.memory_mb_limit = job.limits.memory_mb
        self.cgroup = None
        found = containment.layers()
        if found.cgroups is not None:
            try:
                self.cgroup = WorkerCgroup(found.cgroups, memory_mb=job.limits.memory_mb,
                                           max_processes=job.limits.max_processes)
            except OSError:  # e.g. cgroups exhausted: the rlimits and watchdog still stand
                self.cgroup = None
        read_fd, write_fd = os.pipe()
        self.started = time.monotonic()
        argv = [sys.executable, "-s", "-c", _BOOTSTRAP, str(job_file), str(write_fd)]
        self.proc = subprocess.Popen(
            containment.warden_command(plan, argv, scratch / "work", self.cgroup.procs_files if self.cgroup else []),
            pass_fds=(write_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd=scratch, env=_worker_env(job, scratch), start_new_session=True)
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
            if name == "SIGKILL" and self.cgroup is not None and self.cgroup.out_of_memory():
                return f"used more than the {self.memory_mb_limit} MB memory limit (the kernel stopped it)"
            why = {"SIGKILL": " (often the machine running out of memory)",
                   "SIGXCPU": " (it used up its CPU-time limit)",
                   "SIGSEGV": " (a crash inside a library, often from running out of memory)"}.get(name, "")
            return f"was killed by {name}{why}"
        return (f"exited with code {code} before finishing; remove calls to exit(), sys.exit() "
                "or os._exit() from your code")

    def kill(self) -> None:
        """Kill the worker and every descendant, including ones that left its session: the
        warden (a subreaper) does it on SIGTERM; force, and the cgroup, where it does not."""
        if self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout=_WARDEN_GRACE_S)
            except subprocess.TimeoutExpired:  # a warden stopped by a worker of its own user
                self._force_kill()
        if self.cgroup is not None:
            self.cgroup.kill()
            self.cgroup.remove()
        self.proc.wait()
        self._output_thread.join(timeout=2)

    def _force_kill(self) -> None:
        try:
            tree = [self._ps, *self._ps.children(recursive=True)]
        except psutil.Error:
            tree = []
        for process in tree:
            try:
                process.kill()
            except psutil.Error:
                pass

    def output(self) -> str:
        text = self._output.decode("utf-8", errors="replace")
        if self._output_dropped:
            text += f"\n[... {self._output_dropped} more bytes of output not kept]"
        return text


def _cpu_budget_s(job: WorkerJob, checks: list[str]) -> int:
    """CPU seconds for one worker: every wall-clock cap it may use, once per torch thread,
    plus start-up (the wall-clock caps stay the real limit; this one catches what they miss)."""
    wall = job.limits.import_timeout_s + sum(job.timeouts[name] + BETWEEN_CHECKS_S for name in checks)
    return int(wall * max(job.limits.torch_threads, 1)) + 60


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
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])
_BOOTSTRAP = (
    "import sys, time; t = time.perf_counter(); import torch; t = time.perf_counter() - t; "
    f"sys.path.insert(0, {_PACKAGE_PARENT!r}); import autograder.sandbox.worker as w; "
    "import autograder.toolkit.check, autograder.toolkit.probe, autograder.sandbox.wire; "
    f"sys.path.remove({_PACKAGE_PARENT!r}); w.main(sys.argv[1:], torch_import_s=t)"
)
