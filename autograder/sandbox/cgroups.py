"""A cgroup per worker, where this process may make one: the kernel then caps the memory of
the worker's whole process tree (children included, which an address-space limit misses) and
the number of its processes and threads (fork bombs), and lists every process in it for the
final kill, however it forked or re-parented.

cgroup v2 (one hierarchy, ``0::/path`` in /proc/self/cgroup) is used when this process's
cgroup delegates the memory and pids controllers; else cgroup v1's separate memory and pids
hierarchies. Neither writable (a container with a read-only /sys/fs/cgroup): None, and
:mod:`autograder.sandbox.isolate` falls back to the address-space cap, its watchdog and RLIMIT_NPROC.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_counter = itertools.count()


@dataclass(frozen=True)
class CgroupSupport:
    version: int  # 1 or 2
    parents: tuple[Path, ...]  # where a worker's cgroups are made: v2 one folder; v1 (memory, pids)

    @property
    def line(self) -> str:
        return f"cgroup v{self.version}"


@functools.cache
def cgroup_support() -> tuple[CgroupSupport | None, str]:
    """(support, "") or (None, why not); decided once per process by making a test cgroup."""
    own = _own_cgroups()
    if (CGROUP_ROOT / "cgroup.controllers").is_file() and "" in own:
        candidate = CgroupSupport(2, (CGROUP_ROOT / own[""].lstrip("/"),))
    elif (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "pids").is_dir():
        candidate = CgroupSupport(1, tuple(CGROUP_ROOT / name / own.get(name, "/").lstrip("/")
                                           for name in ("memory", "pids")))
    else:
        return None, "no cgroup hierarchy with the memory and pids controllers is mounted"
    try:
        trial = WorkerCgroup(candidate, memory_mb=64, max_processes=8)
        trial.remove()
    except OSError as error:
        return None, f"cannot make a cgroup under {candidate.parents[0]} ({error.strerror or error})"
    return candidate, ""


class WorkerCgroup:
    """The cgroup(s) of one worker, created with its limits; ``procs_files`` is what the
    warden writes its pid to before it starts the worker."""

    def __init__(self, support: CgroupSupport, *, memory_mb: int, max_processes: int):
        self.support = support
        name = f"autograder-{os.getpid()}-{next(_counter)}"
        self.folders = [parent / name for parent in support.parents]
        limit = str(memory_mb * 2**20)
        if support.version == 2:
            _enable_controllers(support.parents[0])
        for folder in self.folders:
            folder.mkdir()
        try:
            if support.version == 2:
                folder = self.folders[0]
                _write(folder / "memory.max", limit)
                _write(folder / "memory.swap.max", "0", optional=True)
                _write(folder / "pids.max", str(max_processes))
            else:
                memory, pids = self.folders
                _write(memory / "memory.limit_in_bytes", limit)
                _write(memory / "memory.memsw.limit_in_bytes", limit, optional=True)  # no escape into swap
                _write(pids / "pids.max", str(max_processes))
        except OSError:
            self.remove()
            raise

    @property
    def procs_files(self) -> list[str]:
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for folder in self.folders:
            try:
                found |= {int(line) for line in (folder / "cgroup.procs").read_text().split()}
            except OSError:
                continue
        return found

    def out_of_memory(self) -> bool:
        """Whether the kernel's OOM killer struck inside this cgroup."""
        name = "memory.events" if self.support.version == 2 else "memory.oom_control"
        try:
            fields = dict(line.split() for line in (self.folders[0] / name).read_text().splitlines() if line)
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def kill(self, deadline_s: float = 5.0) -> None:
        """SIGKILL every process in the cgroup until it is empty."""
        kill_file = self.folders[0] / "cgroup.kill"
        if self.support.version == 2 and kill_file.exists():
            _write(kill_file, "1", optional=True)
        stop = time.monotonic() + deadline_s
        while (alive := self.pids()) and time.monotonic() < stop:
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        for folder in self.folders:
            for _ in range(50):  # a killed process leaves its cgroup once it is reaped
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _own_cgroups() -> dict[str, str]:
    """controller -> this process's cgroup path ("" for the v2 hierarchy)."""
    found = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                found[controller] = path
    except (OSError, ValueError):
        pass
    return found


def _enable_controllers(parent: Path) -> None:
    enabled = (parent / "cgroup.subtree_control").read_text().split()
    missing = [name for name in ("memory", "pids") if name not in enabled]
    if missing:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{name}" for name in missing))


def _write(path: Path, text: str, optional: bool = False) -> None:
    try:
        path.write_text(text)
    except OSError:
        if not optional:
            raise
