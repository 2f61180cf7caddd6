"""The socket filter (autograder/sandbox/seccomp.py), installed in a child Python: every socket family
but AF_UNIX is refused, in every thread and in processes it starts; AF_UNIX still works."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from autograder.sandbox import seccomp

pytestmark = pytest.mark.skipif(seccomp.unsupported() is not None, reason=str(seccomp.unsupported()))

CHILD = textwrap.dedent("""
    import socket, subprocess, sys, threading
    from autograder.sandbox import seccomp
    print("installed", seccomp.install())
    def attempt(family, kind=socket.SOCK_STREAM):
        try:
            socket.socket(family, kind).close()
            return "allowed"
        except PermissionError:
            return "refused"
    print("inet", attempt(socket.AF_INET), "inet6", attempt(socket.AF_INET6),
          "udp", attempt(socket.AF_INET, socket.SOCK_DGRAM), "unix", attempt(socket.AF_UNIX))
    seen = []
    thread = threading.Thread(target=lambda: seen.append(attempt(socket.AF_INET)))
    thread.start(); thread.join()
    print("thread", seen[0])
    child = subprocess.run([sys.executable, "-c", "import socket; socket.socket()"], capture_output=True)
    print("child", "refused" if b"PermissionError" in child.stderr else "allowed")
""")


def test_only_unix_sockets_are_left():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    said = dict(zip(words[::2], words[1::2], strict=True))
    assert said == {"installed": "None", "inet": "refused", "inet6": "refused", "udp": "refused",
                    "unix": "allowed", "thread": "refused", "child": "refused"}


def test_without_the_filter_the_same_child_may_open_sockets():
    done = subprocess.run([sys.executable, "-c", CHILD.replace("seccomp.install()", "None")], capture_output=True,
                          text=True, timeout=60)
    assert "inet allowed" in done.stdout and "child allowed" in done.stdout
