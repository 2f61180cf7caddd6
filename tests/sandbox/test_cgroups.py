"""Per-worker cgroups (autograder/sandbox/cgroups.py), where this machine lets the tests make them: the
process cap stops a fork loop, the memory cap ends a process that outgrows it and says so,
kill empties the cgroup, and remove leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from autograder.sandbox.cgroups import WorkerCgroup, cgroup_support

SUPPORT, WHY_NOT = cgroup_support()
pytestmark = pytest.mark.skipif(SUPPORT is None, reason=f"no writable cgroups here: {WHY_NOT}")


def start_in(group: WorkerCgroup, code: str) -> subprocess.Popen:
    """``python -c code`` moved into ``group`` before it runs ``code``."""
    joiner = ("import sys\nfor path in sys.argv[1:]:\n    open(path, 'w').write('0')\n" + code)
    return subprocess.Popen([sys.executable, "-c", joiner, *group.procs_files], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_process_cap_stops_a_fork_loop_and_kill_empties_the_cgroup():
    group = WorkerCgroup(SUPPORT, memory_mb=1024, max_processes=12)
    try:
        process = start_in(group, "import subprocess, time\nstarted = 0\ntry:\n    for _ in range(40):\n"
                                  "        subprocess.Popen(['sleep', '60']); started += 1\n"
                                  "except OSError as error:\n    print(started, type(error).__name__, flush=True)\n"
                                  "time.sleep(60)\n")
        line = process.stdout.readline().split()
        assert line and int(line[0]) < 12 and line[1] == "BlockingIOError"
        assert len(group.pids()) >= int(line[0])
        group.kill()
        assert not group.pids() and process.wait(timeout=10) == -9
    finally:
        group.kill()
        group.remove()
    assert not any(folder.exists() for folder in group.folders)


def test_the_memory_cap_ends_a_process_that_outgrows_it_and_says_so():
    group = WorkerCgroup(SUPPORT, memory_mb=256, max_processes=16)
    try:
        assert not group.out_of_memory()
        process = start_in(group, "held = []\nwhile len(held) < 64:\n    held.append(bytearray(16 * 2**20))\n")
        assert process.wait(timeout=60) == -9  # killed by the kernel, well before 1 GiB
        deadline = time.monotonic() + 5
        while not group.out_of_memory():
            assert time.monotonic() < deadline, "the OOM kill was not recorded"
            time.sleep(0.05)
    finally:
        group.kill()
        group.remove()
