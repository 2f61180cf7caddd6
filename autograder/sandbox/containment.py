"""Which protections this machine gives the worker, and the command that starts it under them.

Detected once per grading process (:func:`layers`), printed by ``autograder doctor`` and listed
in every report:

- **sandbox**: bubblewrap, run as the worker's user (never as root), gives the worker its own
  user, mount, PID, network, IPC and UTS namespaces: no network, a read-only view of the
  system and of Python, only its scratch folder writable, a size-limited /tmp and /dev/shm,
  and nothing of the grader's own folder (reference solutions, hidden checks and data) nor of
  other submissions or results. As root, the Python folders are first bind-mounted where the
  worker's user can reach them, in the warden's private mount namespace (see warden.py);
- **worker user**: as root, an unprivileged user (:mod:`autograder.sandbox.privileges`);
- **cgroup**: memory and process-count limits on the whole tree (:mod:`autograder.sandbox.cgroups`);
- **seccomp**: no sockets but AF_UNIX (:mod:`autograder.sandbox.seccomp`), installed by the worker;
- always: the warden's subreaper kill, wall-clock limits per check, a CPU-time limit, an
  address-space cap with a resident-memory watchdog, RLIMIT_NPROC where the worker has a uid
  of its own, a file-size limit and an output cap.

``AUTOGRADER_SANDBOX`` = ``auto`` (default), ``off`` (never use bubblewrap) or ``require``
(refuse to grade without it); ``AUTOGRADER_CGROUPS`` = ``auto`` or ``off``.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder.sandbox import seccomp
from autograder.sandbox.cgroups import CgroupSupport, cgroup_support
from autograder.sandbox.privileges import (
    WORKER_USER_VARIABLE,
    WorkerUser,
    choose_worker_user,
    runtime_paths,
    sandbox_account,
)

SANDBOX_VARIABLE, CGROUPS_VARIABLE = "AUTOGRADER_SANDBOX", "AUTOGRADER_CGROUPS"
WARDEN = Path(__file__).resolve().parent / "warden.py"
_PACKAGE = Path(__file__).resolve().parents[1]
_ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf")
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) and allow unprivileged user "
                "namespaces (Ubuntu 24.04: sysctl kernel.apparmor_restrict_unprivileged_userns=0; Docker: "
                "--security-opt seccomp=unconfined --security-opt apparmor=unconfined)")


class ContainmentError(Exception):
    """AUTOGRADER_SANDBOX=require on a machine without a working sandbox."""


@dataclass(frozen=True)
class Layers:
    user: WorkerUser
    bwrap: str | None  # bubblewrap, when it works here for the worker's user
    sandbox_note: str  # why there is no sandbox ("" when there is one)
    cgroups: CgroupSupport | None
    cgroups_note: str
    seccomp_note: str | None  # why the socket filter cannot be had, or None


@functools.cache
def layers() -> Layers:
    """What this machine offers (decided once per process; a trial run of each layer)."""
    sandbox_mode = os.environ.get(SANDBOX_VARIABLE, "auto").strip().lower() or "auto"
    if sandbox_mode not in ("auto", "off", "require"):
        raise ContainmentError(f"{SANDBOX_VARIABLE}={sandbox_mode!r}: use auto, off or require")
    bwrap, user, note = None, None, f"{SANDBOX_VARIABLE}=off"
    if sandbox_mode != "off":
        bwrap, user, note = _try_sandbox()
        if bwrap is None and sandbox_mode == "require":
            raise ContainmentError(f"{SANDBOX_VARIABLE}=require, but no sandbox: {note}. Fix: {INSTALL_HINT}")
    if user is None:
        user = choose_worker_user(os.geteuid(), os.environ.get(WORKER_USER_VARIABLE) or None, runtime_paths())
    if os.environ.get(CGROUPS_VARIABLE, "auto").strip().lower() == "off":
        groups, groups_note = None, f"{CGROUPS_VARIABLE}=off"
    else:
        groups, groups_note = cgroup_support()
    return Layers(user, bwrap, note, groups, groups_note, seccomp.unsupported())


def _try_sandbox() -> tuple[str | None, WorkerUser | None, str]:
    """(bwrap, user, "") when a trial sandbox starts Python as the worker's user (None: this
    process's own, the grader not being root), else (None, None, why not)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None, None, "bubblewrap (bwrap) is not installed"
    user = WorkerUser(None, None, "")
    if os.geteuid() == 0:
        user = sandbox_account(os.environ.get(WORKER_USER_VARIABLE) or None)
        if user.uid is None:
            return None, None, user.line
    trial = Path(tempfile.mkdtemp(prefix="autograder-trial-"))
    try:
        (trial / "work").mkdir()
        if user.uid is not None:
            os.chmod(trial, 0o711)
            os.chown(trial / "work", user.uid, user.gid)
        plan = _sandbox_plan(bwrap, trial, user, tmp_mb=16, device="cpu")
        argv = [sys.executable, "-I", "-S", "-c", "pass"]
        done = subprocess.run(warden_command(plan, argv, trial / "work"), capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as error:
        return None, None, f"bubblewrap could not start ({error})"
    finally:
        shutil.rmtree(trial, ignore_errors=True)
    if done.returncode != 0:
        said = (done.stdout + done.stderr).decode(errors="replace").strip().splitlines()
        return None, None, f"bubblewrap failed here ({said[-1] if said else f'exit status {done.returncode}'})"
    return bwrap, (user if user.uid is not None else None), ""  # not root: the report says whose user


@dataclass
class SandboxPlan:
    argv_prefix: list[str]  # bwrap and its options, or empty (no sandbox)
    stage: list[tuple[str, str]]  # (folder, where the warden binds it) for a root grader
    uid: int | None
    gid: int | None
    signal_codes: bool  # bubblewrap reports death by signal N as exit status 128 + N


def plan_launch(scratch: Path, *, tmp_mb: int, device: str) -> SandboxPlan:
    """How to start one worker whose scratch folder is ``scratch``, under :func:`layers`."""
    found = layers()
    if found.bwrap is None:
        return SandboxPlan([], [], found.user.uid, found.user.gid, False)
    return _sandbox_plan(found.bwrap, scratch, found.user, tmp_mb=tmp_mb, device=device)


def _sandbox_plan(bwrap: str, scratch: Path, user: WorkerUser, *, tmp_mb: int, device: str) -> SandboxPlan:
    size = str(tmp_mb * 2**20)
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev",
            "--size", size, "--tmpfs", "/tmp", "--size", size, "--tmpfs", "/dev/shm"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):
        top = Path("/") / name
        if top.is_symlink():
            argv += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            argv += ["--ro-bind", str(top), str(top)]
    for name in _ETC_FILES:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    stage = []
    for index, tree in enumerate(runtime_trees()):
        source = str(tree)
        if user.uid is not None:  # root: the warden binds it under scratch, reachable by the user
            target = scratch / "runtime" / str(index)
            target.mkdir(parents=True, exist_ok=True)
            stage.append((source, str(target)))
            source = str(target)
        argv += ["--ro-bind", source, str(tree)]
    if device != "cpu":
        for node in sorted(Path("/dev").glob("nvidia*")):
            argv += ["--dev-bind", str(node), str(node)]
        argv += ["--ro-bind-try", "/sys", "/sys"]
    argv += ["--ro-bind", str(scratch), str(scratch), "--bind", str(scratch / "work"), str(scratch / "work"),
             "--chdir", str(scratch / "work"), "--"]
    return SandboxPlan(argv, stage, user.uid, user.gid, signal_codes=True)


def warden_command(plan: SandboxPlan, argv: list[str], cwd: Path, cgroup_procs: list[str] = ()) -> list[str]:
    """The command that starts ``argv`` (the worker) under the warden."""
    config = {"argv": [*plan.argv_prefix, *argv], "cwd": str(cwd), "uid": plan.uid, "gid": plan.gid,
              "cgroup_procs": list(cgroup_procs), "stage": plan.stage, "signal_codes": plan.signal_codes}
    return [sys.executable, "-I", "-S", str(WARDEN), json.dumps(config)]


def runtime_trees() -> list[Path]:
    """The folders a sandboxed worker must see, read-only: Python's prefixes, every folder on
    the import path, and this package, but nothing else of the folder holding it (the
    reference solutions and the assignments live there)."""
    hidden = _PACKAGE.parent  # the repository (solutions, assignments, reports), when run from one
    if hidden.name in ("site-packages", "dist-packages"):  # an installed package: no repository around it
        hidden = None
    candidates = [Path(sys.base_prefix), Path(sys.prefix), Path(sys.exec_prefix),
                  *(Path(entry) for entry in sys.path[1:] if entry and Path(entry).is_dir())]
    trees: list[Path] = [_PACKAGE]
    for candidate in candidates:
        real = Path(os.path.realpath(candidate))
        inside_repo = (hidden is not None and real.is_relative_to(hidden)
                       and not real.is_relative_to(os.path.realpath(sys.prefix)))
        if real.is_relative_to("/usr") or inside_repo:
            continue
        trees += _around(real, hidden)
    outermost = []
    for tree in sorted(set(trees), key=lambda path: len(path.parts)):
        if not any(tree.is_relative_to(kept) for kept in outermost):
            outermost.append(tree)
    return outermost


def _around(tree: Path, hidden: Path | None) -> list[Path]:
    """``tree``, or where it holds ``hidden``, its parts that do not."""
    if hidden is None or not hidden.is_relative_to(tree):
        return [tree]
    if tree == hidden:
        return []
    return [part for child in sorted(tree.iterdir()) if child.is_dir() and not child.is_symlink()
            for part in _around(child, hidden)]


def describe(found: Layers, *, memory_mb: int, max_processes: int, tmp_mb: int, seccomp_note: str | None) -> list[str]:
    """The report's lines: what was in force for this grade, and what was not and why."""
    lines = ["separate worker process (the grader never imports the submission); results decided and "
             "written by the grading process only, after the worker's processes are dead"]
    if found.bwrap:
        lines.append(f"bubblewrap sandbox: no network, own PID/mount/IPC namespaces, read-only system, only "
                     f"its scratch folder writable, /tmp and /dev/shm limited to {tmp_mb} MB, reference "
                     "solutions, hidden data, other submissions and results not visible")
    else:
        lines.append(f"no sandbox ({found.sandbox_note}): the worker sees the file system its user may read")
    lines.append(found.user.line)
    if found.cgroups:
        lines.append(f"{found.cgroups.line}: at most {memory_mb} MB of memory and {max_processes} processes "
                     "and threads for the whole worker tree")
    else:
        own_user = found.bwrap is not None or found.user.uid is not None
        lines.append(f"no cgroup ({found.cgroups_note}): memory capped by an address-space limit and a "
                     "resident-memory watchdog; " + (f"at most {max_processes} processes and threads (RLIMIT_NPROC)"
                                                     if own_user else "no process-count limit (the worker "
                                                     "shares the grader's user)"))
    lines.append("network blocked by a seccomp filter on socket()" if seccomp_note is None
                 else f"no seccomp socket filter ({seccomp_note})")
    lines.append("per-check wall-clock limit and a CPU-time limit; the whole process tree killed by a "
                 "subreaper (no survivors of setsid or double forks); output capped")
    return lines


def doctor() -> list[tuple[str, bool, str]]:
    """(layer, in force, details or how to get it) for ``autograder doctor``."""
    found = layers()
    rows = [("sandbox (bubblewrap namespaces)", found.bwrap is not None,
             f"{found.bwrap}, as {'the worker user' if found.user.uid is not None else 'this user'}"
             if found.bwrap else f"{found.sandbox_note}. Fix: {INSTALL_HINT}")]
    dropped = found.user.uid is not None or os.geteuid() != 0
    rows.append(("unprivileged worker user", dropped, found.user.line))
    rows.append(("cgroup limits (memory, processes)", found.cgroups is not None,
                 found.cgroups.line if found.cgroups else f"{found.cgroups_note}; the address-space cap, "
                 "watchdog and RLIMIT_NPROC stand in"))
    rows.append(("seccomp socket filter", found.seccomp_note is None, found.seccomp_note or "socket() other than AF_UNIX fails"))
    rows.append(("subreaper kill, wall/CPU/output limits", True, "always"))
    return rows
