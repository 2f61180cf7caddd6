"""A seccomp filter that takes the network away from the worker: ``socket()`` for any family
but AF_UNIX fails with EPERM, as does ``io_uring_setup`` (io_uring can open sockets too).

The worker installs it on all its threads (SECCOMP_FILTER_FLAG_TSYNC) before it imports the
submission; every process the submission starts inherits it and cannot remove it. It is the
network layer where user namespaces are blocked, and a second layer under bubblewrap's empty
network namespace. Linux on x86_64 and aarch64 only; elsewhere :func:`install` says why not.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys

# (AUDIT_ARCH_*, socket, seccomp) per machine; io_uring_setup is 425 on both.
_ARCHES = {"x86_64": (0xC000003E, 41, 317), "aarch64": (0xC00000B7, 198, 277)}
_IO_URING_SETUP, _AF_UNIX, _X32_BIT = 425, 1, 0x40000000
_LD_ABS, _JEQ, _AND, _RET = 0x20, 0x15, 0x54, 0x06
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
PR_SET_NO_NEW_PRIVS, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 38, 1, 1


class _Program(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _filter(arch: int, socket_nr: int) -> bytes:
    """Classic BPF over struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}."""
    code = [
        (_LD_ABS, 0, 0, 4),                  # 0: A = arch
        (_JEQ, 0, 7, arch),                  # 1: another ABI: allow (9)
        (_LD_ABS, 0, 0, 0),                  # 2: A = syscall number
        (_AND, 0, 0, ~_X32_BIT & 0xFFFFFFFF),  # 3: the x32 ABI's numbers are the same plus a bit
        (_JEQ, 3, 0, _IO_URING_SETUP),       # 4: io_uring: deny (8)
        (_JEQ, 0, 3, socket_nr),             # 5: not socket(): allow (9)
        (_LD_ABS, 0, 0, 16),                 # 6: A = low word of args[0], the address family
        (_JEQ, 1, 0, _AF_UNIX),              # 7: AF_UNIX: allow (9)
        (_RET, 0, 0, _DENY),                 # 8
        (_RET, 0, 0, _ALLOW),                # 9
    ]
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in code)


def unsupported() -> str | None:
    """Why this machine cannot have the filter, or None."""
    if not sys.platform.startswith("linux"):
        return f"seccomp is Linux-only (this is {sys.platform})"
    if platform.machine() not in _ARCHES:
        return f"no socket filter for the {platform.machine()} architecture"
    return None


def install() -> str | None:
    """Install the filter on every thread of this process; None when done, else why not."""
    problem = unsupported()
    if problem:
        return problem
    arch, socket_nr, seccomp_nr = _ARCHES[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    code = ctypes.create_string_buffer(_filter(arch, socket_nr))
    program = _Program(len(code.raw) // 8, ctypes.cast(code, ctypes.c_void_p))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.syscall(
            seccomp_nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(program)) != 0:
        return f"the kernel refused the filter ({errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())})"
    return None
