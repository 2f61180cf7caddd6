"""The unprivileged worker user (autograder/sandbox/privileges.py, used by autograder/sandbox/containment.py):
the decision, the scratch folder handed over, and a real grade as root without the sandbox
whose student code runs as `nobody`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import REFERENCE, REPO

from autograder.sandbox import containment, isolate, privileges
from autograder.spec import load_spec

ROOT_ONLY = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")


@pytest.fixture
def open_folder():
    """A temporary folder every user may enter (pytest's tmp_path sits under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-test-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_unreachable_names_the_folder_or_file_that_shuts_the_user_out(open_folder):
    nobody = (65534, 65534)
    (open_folder / "open").mkdir(mode=0o755)
    (open_folder / "open" / "file.py").write_text("")
    (open_folder / "open" / "file.py").chmod(0o644)
    (open_folder / "closed" / "inner").mkdir(parents=True)
    (open_folder / "closed" / "inner" / "file.py").write_text("")
    (open_folder / "closed").chmod(0o700)
    (open_folder / "open" / "link.py").symlink_to(open_folder / "closed" / "inner" / "file.py")
    assert privileges.unreachable([(open_folder / "open", "rx"), (open_folder / "open" / "file.py", "r")], *nobody) is None
    problem = privileges.unreachable([(open_folder / "closed" / "inner" / "file.py", "r")], *nobody)
    assert problem.startswith(f"cannot enter {open_folder / 'closed'} (mode 0700)")
    assert "cannot enter" in privileges.unreachable([(open_folder / "open" / "link.py", "r")], *nobody)  # resolved
    (open_folder / "open" / "file.py").chmod(0o600)
    assert "cannot read" in privileges.unreachable([(open_folder / "open" / "file.py", "r")], *nobody)
    (open_folder / "open").chmod(0o711)  # may pass through, may not list: not enough for an import folder
    assert "cannot read and enter/run" in privileges.unreachable([(open_folder / "open", "rx")], *nobody)
    owner = os.stat(open_folder).st_uid  # the owner's bits apply to the owner
    assert privileges.unreachable([(open_folder / "closed" / "inner" / "file.py", "r")], owner, -1) is None
    assert privileges.unreachable([(open_folder / "missing.py", "r")], *nobody) is None


def test_the_worker_user_decision(open_folder, monkeypatch):
    choose = privileges.choose_worker_user
    assert choose(None, None, []).uid is None
    own = choose(1000, "nobody", [])
    assert own.uid is None and "grader's own user" in own.line and "uid 1000" in own.line
    missing = choose(0, "no-such-user-here", [])
    assert missing.uid is None and missing.line == (
        "grader runs as root but could not drop: AUTOGRADER_WORKER_USER names user 'no-such-user-here', "
        "which does not exist; student code ran as root")
    assert "is a root account" in choose(0, "root", []).line
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody here")
    (open_folder / "closed").mkdir(mode=0o700)
    closed = choose(0, "nobody", [(open_folder / "closed", "rx")])
    assert closed.uid is None and f"user nobody cannot read and enter/run {open_folder / 'closed'}" in closed.line
    monkeypatch.setattr(privileges, "_trial_start", lambda entry: None)
    dropped = choose(0, "nobody", [(open_folder, "rx")])
    assert (dropped.uid, dropped.gid) == (nobody.pw_uid, nobody.pw_gid)
    assert dropped.line == f"worker ran as user nobody (uid {nobody.pw_uid})"
    monkeypatch.setattr(privileges, "_trial_start", lambda entry: "could not start Python (exit status 1: boom)")
    assert "user nobody could not start Python" in choose(0, "nobody", [(open_folder, "rx")]).line


def test_the_report_lists_the_worker_user():
    lines = isolate.planned_protections(load_spec("attention").limits)
    assert containment.layers().user.line in lines


@ROOT_ONLY
def test_the_scratch_folder_is_handed_over_but_stays_roots(open_folder):
    (open_folder / "submission").mkdir(mode=0o700)
    (open_folder / "submission" / "attention.py").write_text("")
    (open_folder / "submission" / "attention.py").chmod(0o600)
    (open_folder / "work").mkdir()
    privileges.hand_over(open_folder, privileges.WorkerUser(65534, 65534, ""))
    mode = lambda path: path.stat().st_mode & 0o777  # noqa: E731
    assert mode(open_folder) == 0o711 and open_folder.stat().st_uid == 0
    assert mode(open_folder / "submission") == 0o755 and mode(open_folder / "submission" / "attention.py") == 0o644
    assert (open_folder / "work").stat().st_uid == 65534 and mode(open_folder / "work") == 0o700


@ROOT_ONLY
def test_a_grade_as_root_runs_the_student_code_as_nobody(open_folder):
    """The grader runs as root on a Python every user may run (a venv of /usr/bin/python3 that
    sees this environment's packages); the submission, run whole at import, stops unless it
    runs as a user other than root who cannot read a root-only file."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no /usr/bin/python3")
    version = subprocess.run([str(system), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"/usr/bin/python3 is {version}, not this environment's {sys.version_info[:2]}")
    venv = open_folder / "venv"
    made = subprocess.run([str(system), "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"could not make a venv of /usr/bin/python3: {made.stderr.strip()[-300:]}")
    pth = next((venv / "lib").glob("python3*/site-packages")) / "this_environment.pth"
    pth.write_text("".join(f"import site; site.addsitedir({folder!r})\n" for folder in site.getsitepackages())
                   + f"{REPO}\n")
    python = str(venv / "bin" / "python")
    # without the sandbox (which needs no open folders, see test_containment.py)
    fallback = {**os.environ, "AUTOGRADER_WORKER_USER": "nobody", "AUTOGRADER_SANDBOX": "off"}
    probe = subprocess.run([python, "-c", "import torch; from autograder.sandbox.containment import layers; "
                            "print(layers().user.line)"], capture_output=True, text=True, timeout=300, env=fallback)
    if probe.returncode != 0 or not probe.stdout.startswith("worker ran as user nobody"):
        pytest.skip(f"cannot set up a grader that drops to nobody here: {(probe.stdout + probe.stderr)[-300:]}")

    secret = open_folder / "secret.txt"
    secret.write_text("hidden labels")
    secret.chmod(0o600)
    submission = open_folder / "submission" / "attention.py"
    submission.parent.mkdir()
    submission.write_text(REFERENCE.read_text() + textwrap.dedent(f"""
        import os as _os
        if _os.getuid() == 0:
            raise SystemExit("student code ran as root")
        try:
            open({str(secret)!r}).read()
        except PermissionError:
            pass
        else:
            raise SystemExit("student code read a root-only file")
        """))
    out = open_folder / "out"
    done = subprocess.run([python, "-m", "autograder", "grade", "attention", str(submission), "--out", str(out),
                           "--device", "cpu", "--top-level", "all", "--quiet"], capture_output=True, text=True,
                          timeout=300, cwd=open_folder, env=fallback)
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "results.json").read_text())
    assert f"worker ran as user nobody (uid {pwd.getpwnam('nobody').pw_uid})" in document["extra_data"]["protections"]
    assert document["score"] == 20, document["output"]


@ROOT_ONLY
def test_a_closed_folder_on_the_import_path_keeps_root(open_folder, monkeypatch):
    """numpy in a venv's system site-packages under a closed /root: the worker could start
    Python but not import numpy, so dropping would fail every check; the grader must not drop."""
    (open_folder / "closed" / "site-packages").mkdir(parents=True)
    (open_folder / "closed").chmod(0o700)
    monkeypatch.setattr(sys, "path", [*sys.path, str(open_folder / "closed" / "site-packages")])
    paths = privileges.runtime_paths()
    assert (open_folder / "closed" / "site-packages", "rx") in paths
    problem = privileges.unreachable(paths, 65534, 65534)
    assert problem and "cannot enter" in problem
