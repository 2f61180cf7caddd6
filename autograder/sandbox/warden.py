"""The warden: a tiny trusted process between the grading process and the worker.

Run by :mod:`autograder.sandbox.isolate` as ``python -I -S warden.py CONFIG_JSON`` (standard library
only, nothing of the student's on its path). In this order it

1. joins the worker's cgroups (memory and process-count limits) before anything untrusted runs;
2. asks the kernel for SIGTERM when the grading process dies, and becomes a *child subreaper*:
   every process the worker leaves behind, however often it forks or calls ``setsid``, is
   re-parented to the warden instead of to init, so none can escape the final kill;
3. as root, where asked (``stage``), makes its own private mount namespace and bind-mounts the
   folders the sandbox needs (a Python under a closed /root) where the worker's user can
   reach them; nothing outside this process tree sees those mounts;
4. forks the worker command in a new session, dropped to the worker's user (never root inside a
   sandbox: the namespaces are made by bubblewrap running as that user);
5. waits for the worker, or for SIGTERM from the grader, then kills every descendant until none
   is left, and exits with the worker's status (dying of the same signal where it was killed).

CONFIG: {"argv": [...], "cwd": str, "uid": int|null, "gid": int|null,
"cgroup_procs": [path, ...], "stage": [[source, target], ...], "signal_codes": bool}.
"""

import ctypes
import json
import os
import resource
import signal
import sys
import time

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 36, 38
CLONE_NEWNS, MS_REC, MS_BIND, MS_PRIVATE = 0x00020000, 16384, 4096, 1 << 18
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _stage(pairs: list) -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    for source, target in pairs:
        _check(_libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None),
               f"bind {source} on {target}")


def _start_worker(config: dict) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        if config.get("uid") is not None:
            os.setgroups([])
            os.setresgid(config["gid"], config["gid"], config["gid"])
            os.setresuid(config["uid"], config["uid"], config["uid"])
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        os.chdir(config["cwd"])
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execv(config["argv"][0], config["argv"])
    except BaseException as error:  # noqa: BLE001 - anything here is the grader's problem
        os.write(2, f"autograder warden: could not start the worker: {error}\n".encode())
    os._exit(127)


def _descendants() -> list[int]:
    """Every process below this one (after re-parenting, usually direct children)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    stat = handle.read()
                parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [], [os.getpid()]
    while frontier:
        below = [pid for pid, parent in parents.items() if parent in frontier]
        found += below
        frontier = below
    return found


def _reap() -> list[tuple[int, int]]:
    reaped = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid == 0:
            return reaped
        reaped.append((pid, status))


def _kill_everything_below(deadline_s: float = 10.0) -> None:
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        below = _descendants()
        if not below:
            return
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
        _reap()


def main(config: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    for procs in config.get("cgroup_procs", []):
        with open(procs, "w") as handle:
            handle.write("0")
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the grader is already gone
        sys.exit(1)
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if config.get("stage"):
        _stage(config["stage"])
    worker = _start_worker(config)
    status = None
    while status is None:
        number = signal.sigwait([signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
        if number != signal.SIGCHLD:
            break
        status = dict(_reap()).get(worker)
    _kill_everything_below()
    number = None if status is None or not os.WIFSIGNALED(status) else os.WTERMSIG(status)
    if config.get("signal_codes") and status is not None and os.WIFEXITED(status):
        # bubblewrap reports a sandboxed process killed by signal N as exit status 128 + N
        code = os.WEXITSTATUS(status)
        number = code - 128 if 128 < code < 128 + signal.NSIG else None
    if status is None or number is not None:
        number = number or signal.SIGKILL
        if number not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        sys.exit(128 + number)  # a signal whose default is not to terminate
    sys.exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
