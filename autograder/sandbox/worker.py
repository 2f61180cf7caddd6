"""The worker: the only process that imports student code.

Started by :mod:`autograder.sandbox.isolate` (under the warden, in the sandbox where there is one)
as ``python -c <bootstrap> JOB_FILE CONTROL_FD`` (the bootstrap imports torch first and times
it). It loads the probe code that came in the job (never the grader's check files), sets its
limits and the socket filter, imports the submission, then runs each requested probe and
sends every step back as a frame on the control pipe (see :mod:`autograder.sandbox.wire`)::

    hello     {torch_import_s, seccomp}     # seccomp: why the socket filter is missing, or None
    imported  {ok, error?, stdout, seconds}
    start     {check}
    result    {check, result}        # result as produced by probe.run_probe
    done

Nothing it sends is trusted by the grader beyond being parsed as data.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str], torch_import_s: float = 0.0) -> None:
    """``torch_import_s``: measured by the bootstrap, which imports torch first."""
    job_path, control_fd = argv[0], int(argv[1])
    control = os.fdopen(control_fd, "wb", buffering=0)
    import torch

    from autograder.sandbox import wire
    from autograder.toolkit.check import load_probe_sources
    from autograder.toolkit.probe import _CappedText, describe_exception, run_probe

    with open(job_path, "rb") as handle:
        job = wire.read_frame(handle, max_bytes=2**34)
    torch.set_num_threads(job["torch_threads"])
    classes = load_probe_sources(job["check_sources"], job["assignment"])
    seccomp_problem = _limit_resources(job)

    def send(event: str, **payload):
        cap = job["result_bytes"]
        try:
            frame = wire.pack_frame({"event": event, **payload})
        except Exception as error:  # e.g. a tensor subclass whose methods raise
            frame = wire.pack_frame({"event": event, **_failed(payload, "UnreadableResult", (
                f"the grader could not read what your function returned ({type(error).__name__}: "
                f"{error}); return plain tensors, numbers, lists or tuples"))})
        if len(frame) > cap:
            frame = wire.pack_frame({"event": event, **_failed(payload, "OutputTooLarge", (
                f"your function returned about {len(frame) // 2**20} MB of data, more than the "
                f"{cap // 2**20} MB the grader accepts back; return only the tensors asked for"))})
        control.write(frame)

    send("hello", torch_import_s=torch_import_s, seccomp=seccomp_problem)

    from autograder.sandbox import substitutes  # stand-ins and placeholders, before the import

    substitutes.install(**job.get("substitutes", {}))

    # Import the submission with the random state saved and restored around it.
    captured = _CappedText(job["stdout_cap"])
    t0 = time.perf_counter()
    rng_state = _save_rng()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            module = _import_submission(job["submission_file"])
        imported = {"ok": True}
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        imported = {"ok": False, "error": describe_exception(error, job["submission_file"])}
    _restore_rng(rng_state)
    send("imported", stdout=captured.text(), seconds=time.perf_counter() - t0, **imported)
    if not imported["ok"]:
        _finish(control)

    for entry in job["checks"]:
        name = entry["name"]
        send("start", check=name)
        result = run_probe(classes[name][0], module, entry["inputs"], device=job["device"],
                           seed=job["seed"], check_name=name, source_file=job["submission_file"],
                           stdout_cap=job["stdout_cap"])
        send("result", check=name, result=result)
    send("done")
    _finish(control)


def _import_submission(path: str):
    """Import under its own name (attention.py -> `attention`), so that a helper module of a
    folder submission importing it gets this same module, not a second copy."""
    sys.path.insert(0, os.path.dirname(path))
    name = Path(path).stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _limit_resources(job: dict) -> str | None:
    """Limits on this process and all it starts, set before the submission is imported:
    address space on CPU (CUDA reserves huge virtual ranges, so the grader's RSS watchdog or
    cgroup is the memory guard there), CPU time, file size, no core dumps, a process count
    where this user is the worker's own, and the socket filter. Returns why the filter could
    not be installed, or None."""
    from autograder.sandbox import seccomp

    limits = [(resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_CPU, job["cpu_s"], job["cpu_s"] + 10),  # SIGXCPU, then SIGKILL
              (resource.RLIMIT_FSIZE, job["file_mb"] * 2**20, job["file_mb"] * 2**20)]
    if job["device"] == "cpu":
        limits.append((resource.RLIMIT_AS, job["memory_mb"] * 2**20, job["memory_mb"] * 2**20))
    if job.get("max_processes"):
        limits.append((resource.RLIMIT_NPROC, job["max_processes"], job["max_processes"]))
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))
    return seccomp.install()


def _save_rng():
    import random

    import numpy as np
    import torch
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _restore_rng(state) -> None:
    import random

    import numpy as np
    import torch
    random.setstate(state[0])
    np.random.set_state(state[1])
    torch.set_rng_state(state[2])


def _failed(payload: dict, kind: str, message: str) -> dict:
    """``payload`` with its result (or import outcome) replaced by a failure ``kind``."""
    error = {"type": kind, "message": message, "where": None, "traceback": "", "hint": message}
    if "result" in payload:
        return {**payload, "result": {"ok": False, "error": error, "stdout": "", "seconds": 0.0}}
    return {key: value for key, value in payload.items() if key in ("check", "seconds")} | {
        "ok": False, "error": error, "stdout": ""}


def _finish(control) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    control.close()
    os._exit(0)  # skip atexit handlers and threads a submission may have left behind


if __name__ == "__main__":
    main(sys.argv[1:])
