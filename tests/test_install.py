"""The install paths offer what HARNESS.md promises student code: every library of
autograder/student_libraries.txt, importable in a fresh virtual environment made the README's
way (the one `nox -s grade` makes: system site-packages visible, torch reused or installed as
the CPU build, then `pip install -e .`)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from autograder.spec import DEFAULT_ALLOWED_IMPORTS, student_requirements

REPO = Path(__file__).resolve().parent.parent
TORCH = os.environ.get("AUTOGRADER_TORCH", "torch==2.13.0")  # as noxfile.py installs it


def test_the_package_requires_every_student_library_and_assignments_allow_them():
    required = metadata.requires("autograder") or []
    for requirement in student_requirements().values():
        assert requirement in required, f"pyproject.toml's dependencies lack {requirement}"
    assert DEFAULT_ALLOWED_IMPORTS == ("torch", "numpy", "matplotlib", "seaborn", "pandas", "tqdm", "einops")


def test_a_fresh_venv_made_the_readme_way_imports_every_student_library(tmp_path):
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    has_torch = subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0
    if not has_torch:
        subprocess.run([*pip, TORCH], check=True, timeout=600)
    done = subprocess.run([*pip, "-e", str(REPO)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = ", ".join(student_requirements())
    done = subprocess.run([python, "-c", f"import {modules}; import autograder.commands.cli"], capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]


class _Session:
    """The two calls noxfile.install_system_packages makes of a nox session."""

    def __init__(self):
        self.ran = []

    def error(self, message):
        raise SystemExit(message)

    def run(self, *args, **kwargs):
        self.ran.append(args)


def _noxfile(monkeypatch, *, root: bool, have: set[str]):
    pytest.importorskip("nox")
    import importlib.util
    import shutil

    spec = importlib.util.spec_from_file_location("noxfile_under_test", REPO / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(shutil, "which", lambda program: f"/usr/bin/{program}" if program in have else None)
    return noxfile


def test_the_tests_session_stops_at_once_naming_what_to_install_without_root_or_sudo(monkeypatch):
    noxfile = _noxfile(monkeypatch, root=False, have={"apt-get"})
    session = _Session()
    with pytest.raises(SystemExit) as stopped:
        noxfile.install_system_packages(session, {"bubblewrap": "bwrap", "chromium": "/usr/bin/chromium"})
    assert "\n" not in str(stopped.value) and "apt-get install --no-install-recommends bubblewrap chromium" in str(stopped.value)
    assert session.ran == []


def test_the_tests_session_installs_what_is_missing_as_root_and_nothing_when_present(monkeypatch):
    noxfile = _noxfile(monkeypatch, root=True, have={"apt-get", "/usr/bin/chromium"})
    session = _Session()
    noxfile.install_system_packages(session, {"bubblewrap": "bwrap", "chromium": "/usr/bin/chromium"})
    assert session.ran[-1][-1] == "bubblewrap" and "chromium" not in session.ran[-1]
    session = _Session()
    noxfile.install_system_packages(session, {"chromium": "/usr/bin/chromium"})
    assert session.ran == []
