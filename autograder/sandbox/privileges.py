"""Who runs the student's code: when the grader is root (a Gradescope container), an
unprivileged user (Gradescope's own advice): ``$AUTOGRADER_WORKER_USER``, else
``autograder-student`` where it exists, else ``nobody``. Inside the sandbox that user needs
nothing of the host's file modes (:mod:`autograder.sandbox.containment` binds what it needs). Without
a sandbox, where that user could not even start Python (an interpreter under a closed home
folder, as with pyenv in /root), the worker keeps root and the report says why.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

try:
    import pwd
except ImportError:  # not POSIX: there is no user to drop to
    pwd = None

WORKER_USER_VARIABLE = "AUTOGRADER_WORKER_USER"
DEFAULT_WORKER_USERS = ("autograder-student", "nobody")  # the first that exists
_PACKAGE = Path(__file__).resolve().parents[1]


def hand_over(scratch: Path, user: WorkerUser) -> None:
    """Let the worker's user read what it needs and write only its work folder: the scratch
    folder stays root's (no one else may create files there, such as a link named like the
    next job file), the staged submission becomes readable, ``work/`` becomes the user's."""
    scratch.chmod(0o711)
    for path in (scratch / "submission").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (scratch / "submission").chmod(0o755)
    os.chown(scratch / "work", user.uid, user.gid)
    (scratch / "work").chmod(0o700)


@dataclass(frozen=True)
class WorkerUser:
    """Who the worker runs as; ``uid`` None: this process's own user."""
    uid: int | None
    gid: int | None
    line: str  # what the report lists among the protections


def sandbox_account(wanted: str | None) -> WorkerUser:
    """The user a root grader runs the sandbox as (its modes do not matter there: the sandbox
    is given the Python folders), or uid None and why not."""
    try:
        entry = _account(wanted)
    except LookupError as error:
        return WorkerUser(None, None, str(error))
    if entry.pw_uid == 0:
        return WorkerUser(None, None, f"{WORKER_USER_VARIABLE}={wanted} is a root account")
    return WorkerUser(entry.pw_uid, entry.pw_gid, f"worker ran as user {entry.pw_name} (uid {entry.pw_uid})")


def choose_worker_user(euid: int | None, wanted: str | None, paths: Iterable[tuple[Path, str]]) -> WorkerUser:
    """Drop to ``wanted`` (default: the first of DEFAULT_WORKER_USERS that exists) when running
    as root, provided that user can reach every one of ``paths`` (path, "r" or "rx") and
    start Python; otherwise say why not and keep root."""
    if euid is None:
        return WorkerUser(None, None, "worker ran as the grader's own user")
    if euid != 0:
        return WorkerUser(None, None, f"worker ran as the grader's own user {_user_name(euid)} (uid {euid}); "
                                      "the grader is not root, so there is no user to drop to")
    try:
        entry = _account(wanted)
    except LookupError as error:
        return _kept_root(str(error))
    if entry.pw_uid == 0:
        return _kept_root(f"{WORKER_USER_VARIABLE}={wanted} is a root account")
    problem = unreachable(paths, entry.pw_uid, entry.pw_gid) or _trial_start(entry)
    if problem:
        return _kept_root(f"user {entry.pw_name} {problem}")
    return WorkerUser(entry.pw_uid, entry.pw_gid, f"worker ran as user {entry.pw_name} (uid {entry.pw_uid})")


def unreachable(paths: Iterable[tuple[Path, str]], uid: int, gid: int) -> str | None:
    """Why user ``uid`` (group ``gid``, no others) cannot reach one of ``paths``, or None.
    Each path is checked as given and resolved: every folder above it must let that user
    through (x), and the path itself must give it ``need`` ("r" for a file, "rx" for a
    folder it lists or a program it runs). Paths that do not exist are skipped."""
    for given, need in paths:
        for path in dict.fromkeys((Path(os.path.abspath(given)), Path(os.path.realpath(given)))):
            if not path.exists():
                continue
            for folder in reversed(path.parents):
                if not _allowed(folder, uid, gid, "x"):
                    return f"cannot enter {folder} (mode {_mode(folder)}), which holds {path}"
            if not _allowed(path, uid, gid, need):
                return f"cannot {'read' if need == 'r' else 'read and enter/run'} {path} (mode {_mode(path)})"
    return None


def _allowed(path: Path, uid: int, gid: int, need: str) -> bool:
    status = path.stat()
    shift = 6 if status.st_uid == uid else 3 if status.st_gid == gid else 0
    wanted = (4 if "r" in need else 0) | (1 if "x" in need else 0)
    return (status.st_mode >> shift) & wanted == wanted


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)[2:].zfill(4)


def runtime_paths() -> list[tuple[Path, str]]:
    """What a worker reads before it touches the submission: the interpreter (and a venv's
    pyvenv.cfg), the standard library, every folder on the import path (numpy, matplotlib or
    a student's pandas may sit in another one than torch, e.g. a venv's system site-packages
    under a closed /root), torch and this package (the check code travels in the job)."""
    paths = [(Path(sys.executable), "rx"), (Path(sys.prefix) / "pyvenv.cfg", "r"),
             (Path(os.__file__).parent, "rx"), (_PACKAGE.parent, "rx"),
             (_PACKAGE, "rx"), (_PACKAGE / "sandbox" / "worker.py", "r")]
    paths += [(Path(entry), "rx") for entry in sys.path[1:] if entry and Path(entry).is_dir()]
    torch_spec = importlib.util.find_spec("torch")
    if torch_spec is not None and torch_spec.submodule_search_locations:
        torch_folder = Path(list(torch_spec.submodule_search_locations)[0])
        paths += [(torch_folder.parent, "rx"), (torch_folder, "rx"), (torch_folder / "__init__.py", "r")]
    return paths


def _account(wanted: str | None):
    if wanted:
        try:
            return pwd.getpwnam(wanted)
        except KeyError:
            raise LookupError(f"{WORKER_USER_VARIABLE} names user {wanted!r}, which does not exist") from None
    for name in DEFAULT_WORKER_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LookupError(f"none of the users {', '.join(DEFAULT_WORKER_USERS)} exists")


def _trial_start(entry) -> str | None:
    """Start the interpreter once as that user (catches what modes do not show: a missing
    setuid capability, a noexec mount)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], user=entry.pw_uid, group=entry.pw_gid,
                              extra_groups=[], cwd="/", stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"could not start Python ({type(error).__name__}: {error})"
    if done.returncode != 0:
        return f"could not start Python (exit status {done.returncode}: {done.stderr.decode(errors='replace')[-200:]})"
    return None


def _kept_root(reason: str) -> WorkerUser:
    return WorkerUser(None, None, f"grader runs as root but could not drop: {reason}; student code ran as root")


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
