"""The warden (autograder/sandbox/warden.py): it passes the worker's exit status on, and whatever the
worker leaves behind — a child in its own session, a double-forked daemon — dies with it,
whether the worker ends by itself or the grader asks the warden to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from autograder.sandbox.containment import WARDEN

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the warden needs Linux")


def warden(code: str, **config) -> subprocess.Popen:
    """A warden running ``python -c code`` as its worker (no sandbox, no user change)."""
    settings = {"argv": [sys.executable, "-I", "-S", "-c", code], "cwd": "/", "uid": None, "gid": None,
                "cgroup_procs": [], "stage": [], **config}
    return subprocess.Popen([sys.executable, "-I", "-S", str(WARDEN), json.dumps(settings)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def alive(token: str) -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if token in " ".join(p.info["cmdline"] or []) and p.info["status"] != psutil.STATUS_ZOMBIE]


ESCAPE = """
import os, subprocess, time
subprocess.Popen(["sleep", "{token}"], start_new_session=True)   # its own session
if os.fork() == 0:                                               # a daemon: fork, setsid, fork
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "{token}1"])
    os._exit(0)
time.sleep(0.5)
{end}
"""


@pytest.mark.parametrize("end", ["raise SystemExit(3)", "time.sleep(60)"])
def test_nothing_the_worker_started_outlives_it(end):
    token = f"{60 + len(end)}.{os.getpid()}{time.monotonic_ns() % 10**6}"  # this run's own: about a minute
    process = warden(ESCAPE.format(token=token, end=end))
    deadline = time.monotonic() + 20
    while len(alive(token)) < 2 and process.poll() is None:
        assert time.monotonic() < deadline, "the worker's children never started"
        time.sleep(0.05)
    if end.startswith("time.sleep"):
        time.sleep(0.6)
        process.terminate()  # the grader's request: kill everything, then exit
    process.wait(timeout=20)
    assert not alive(token), "a descendant survived the warden"
    assert process.returncode == (3 if end.startswith("raise") else -signal.SIGKILL)


def test_the_worker_status_comes_through():
    assert warden("raise SystemExit(0)").wait(timeout=20) == 0
    assert warden("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)").wait(timeout=20) == -signal.SIGSEGV
    # under bubblewrap a signal arrives as exit status 128 + N
    assert warden("raise SystemExit(137)", signal_codes=True).wait(timeout=20) == -signal.SIGKILL
    assert warden("raise SystemExit(137)").wait(timeout=20) == 137


def test_a_worker_that_cannot_start_is_reported_on_stderr():
    settings = {"argv": ["/nonexistent/python"], "cwd": "/", "uid": None, "gid": None}
    done = subprocess.run([sys.executable, "-I", "-S", str(WARDEN), json.dumps(settings)], capture_output=True,
                          timeout=20)
    assert done.returncode == 127 and b"could not start the worker" in done.stderr
