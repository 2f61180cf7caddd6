"""What autograder/sandbox/containment.py detects, and the sandbox it builds: a process started exactly
as a worker is (under the warden, in bubblewrap) finds no network, a read-only system, no
trace of the grader's folder but its package, a small /tmp, and only its scratch writable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from conftest import REPO

from autograder.sandbox import containment
from autograder.sandbox.privileges import hand_over


@pytest.fixture
def fresh_layers(monkeypatch):
    """layers() decided again under the test's environment, and again after it."""
    containment.layers.cache_clear()
    yield monkeypatch
    containment.layers.cache_clear()


def test_the_sandbox_sees_python_and_the_package_but_nothing_else_of_the_repository():
    trees = containment.runtime_trees()
    assert Path(containment.__file__).parents[1] in trees
    for tree in trees:
        assert not REPO.is_relative_to(tree), f"{tree} would show the whole repository"
        assert not tree.is_relative_to(REPO / "solutions") and not tree.is_relative_to(REPO / "assignments")
    assert any(Path(sys.base_prefix).resolve().is_relative_to(tree) for tree in trees)


def test_a_folder_holding_the_repository_is_bound_around_it(tmp_path):
    (tmp_path / "prefix" / "lib").mkdir(parents=True)
    (tmp_path / "prefix" / "src" / "repo" / "solutions").mkdir(parents=True)
    (tmp_path / "prefix" / "src" / "other").mkdir()
    parts = containment._around(tmp_path / "prefix", tmp_path / "prefix" / "src" / "repo")
    assert parts == [tmp_path / "prefix" / "lib", tmp_path / "prefix" / "src" / "other"]
    assert containment._around(tmp_path / "prefix", None) == [tmp_path / "prefix"]


def test_an_installed_package_keeps_its_site_packages(tmp_path, monkeypatch):
    """Installed without a repository around it, the package's parent is site-packages, where
    torch lives: that folder must be bound whole."""
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "autograder").mkdir(parents=True)
    (site / "torch").mkdir()
    monkeypatch.setattr(containment, "_PACKAGE", site / "autograder")
    monkeypatch.setattr(sys, "path", ["", str(site)])
    assert site in containment.runtime_trees()


def test_require_without_a_sandbox_stops_with_the_fix(fresh_layers):
    fresh_layers.setenv(containment.SANDBOX_VARIABLE, "require")
    fresh_layers.setattr(shutil, "which", lambda name: None)
    with pytest.raises(containment.ContainmentError, match="bubblewrap .* not installed.*apt-get install bubblewrap"):
        containment.layers()
    fresh_layers.setenv(containment.SANDBOX_VARIABLE, "sometimes")
    with pytest.raises(containment.ContainmentError, match="use auto, off or require"):
        containment.layers()


def test_the_report_says_what_is_missing_and_why(fresh_layers):
    fresh_layers.setenv(containment.SANDBOX_VARIABLE, "off")
    fresh_layers.setenv(containment.CGROUPS_VARIABLE, "off")
    found = containment.layers()
    lines = containment.describe(found, memory_mb=2048, max_processes=40, tmp_mb=64, seccomp_note="not here")
    text = "\n".join(lines)
    assert "no sandbox (AUTOGRADER_SANDBOX=off)" in text and "no cgroup (AUTOGRADER_CGROUPS=off)" in text
    assert "no seccomp socket filter (not here)" in text and found.user.line in lines
    assert "subreaper" in text
    rows = {layer: in_force for layer, in_force, _ in containment.doctor()}
    assert rows["sandbox (bubblewrap namespaces)"] is False and rows["cgroup limits (memory, processes)"] is False


PROBE = textwrap.dedent("""
    import json, os, socket
    def attempt(action):
        try:
            action()
            return "ok"
        except OSError as error:
            return type(error).__name__
    def write(path):
        with open(path, "w") as handle:
            handle.write("x")
    found = {
        "uid": os.getuid(), "pid": os.getpid(),
        "repository": sorted(os.listdir(REPO)), "solutions": os.path.exists(REPO + "/solutions"),
        "package": os.path.exists(PACKAGE + "/sandbox/worker.py"),
        "write_usr": attempt(lambda: write("/usr/x")), "write_work": attempt(lambda: write("x")),
        "write_scratch": attempt(lambda: write("../x")),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "tmp_mb": os.statvfs("/tmp").f_blocks * os.statvfs("/tmp").f_frsize // 2**20,
    }
    print(json.dumps(found))
""")


def test_a_process_in_the_sandbox_is_walled_in(fresh_layers):
    found = containment.layers()
    if found.bwrap is None:
        pytest.skip(f"no sandbox here: {found.sandbox_note}")
    scratch = Path(tempfile.mkdtemp(prefix="autograder-test-"))
    try:
        (scratch / "work").mkdir()
        (scratch / "submission").mkdir()
        if found.user.uid is not None:
            hand_over(scratch, found.user)
        plan = containment.plan_launch(scratch, tmp_mb=32, device="cpu")
        code = f"REPO = {str(REPO)!r}\nPACKAGE = {str(Path(containment.__file__).parents[1])!r}\n" + PROBE
        command = containment.warden_command(plan, [sys.executable, "-I", "-c", code], scratch / "work")
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout)
    venv = Path(sys.prefix).resolve()  # a virtual environment inside the repository is bound too
    allowed = {"autograder"} | ({venv.relative_to(REPO).parts[0]} if venv.is_relative_to(REPO) else set())
    assert seen["package"] and set(seen["repository"]) <= allowed  # folders made to hold the mounts
    assert not seen["solutions"], "the reference solutions are visible in the sandbox"
    assert seen["write_usr"] != "ok" and seen["write_scratch"] != "ok" and seen["write_work"] == "ok"
    assert seen["interfaces"] == ["lo"] and seen["tmp_mb"] == 32
    assert seen["pid"] <= 3  # its own PID namespace
    if os.geteuid() == 0:
        assert seen["uid"] != 0, "student code ran as root inside the sandbox"


def test_the_trial_starts_python_in_exactly_one_sandbox(fresh_layers):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    commands, real_run = [], subprocess.run
    fresh_layers.setattr(subprocess, "run", lambda command, **kw: commands.append(command) or real_run(command, **kw))
    containment.layers()
    config = json.loads(commands[0][-1])  # the warden's configuration
    assert config["argv"].count(shutil.which("bwrap")) == 1 and config["argv"][-1] == "pass"
