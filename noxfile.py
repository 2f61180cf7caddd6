"""Sessions: lint, tests, validate, grade, bench, template, calibrate. Extra arguments after `--` pass through.

Torch is reused when the Python running nox already has it (sessions see the system
site-packages); otherwise a CPU build is installed first: AUTOGRADER_TORCH (default
torch==2.13.0) from AUTOGRADER_TORCH_INDEX when set. See README "Installing torch".
The tests session also installs the Debian packages it needs (bubblewrap; Chromium and its
driver under AUTOGRADER_REQUIRE_BROWSER=1) with apt-get where it may, or stops saying what.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests", "validate"]
ROOT = Path(__file__).parent
VENV_PARAMS = ["--system-site-packages"]


def install(session: nox.Session, extras: str = "") -> None:
    probe = "import importlib.util as u; print(u.find_spec('torch') is not None)"
    if session.run("python", "-c", probe, silent=True).strip() != "True":
        index = os.environ.get("AUTOGRADER_TORCH_INDEX")
        session.install(os.environ.get("AUTOGRADER_TORCH", "torch==2.13.0"),
                        *(["--index-url", index] if index else []))
    session.install("-e", f".[{extras}]" if extras else ".")


def system_packages_for_tests() -> dict[str, str]:
    """Debian package -> the program the test suite looks for. bubblewrap always on Linux (unless
    AUTOGRADER_SANDBOX=off): without it the containment and attack tests still pass, on the
    fallback alone, so a suite run without it would say nothing about the sandbox. The browser's
    two under AUTOGRADER_REQUIRE_BROWSER=1, where the report tests fail without them."""
    wanted = {}
    if sys.platform.startswith("linux") and os.environ.get("AUTOGRADER_SANDBOX", "").strip().lower() != "off":
        wanted["bubblewrap"] = "bwrap"
    if os.environ.get("AUTOGRADER_REQUIRE_BROWSER") == "1":  # the paths tests/browser.py uses
        wanted["chromium"] = os.environ.get("AUTOGRADER_CHROMIUM", "/usr/bin/chromium")
        wanted["chromium-driver"] = os.environ.get("AUTOGRADER_CHROMEDRIVER", "/usr/bin/chromedriver")
    return wanted


def apt_prefix() -> list[str] | None:
    """How this user may run apt-get: [] as root, sudo without a password; None where it may not."""
    if shutil.which("apt-get") is None:
        return None
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    return None


def install_system_packages(session: nox.Session, wanted: dict[str, str]) -> None:
    """Install the Debian packages of ``wanted`` whose program is missing, with apt-get where this
    user may; otherwise stop at once, saying in one line what to install."""
    missing = [package for package, program in wanted.items() if shutil.which(program) is None]
    if not missing:
        return
    prefix = apt_prefix()
    if prefix is None:
        session.error(f"missing system packages {', '.join(missing)}: install them (Debian/Ubuntu: `sudo apt-get "
                      f"install --no-install-recommends {' '.join(missing)}`), or run this as root or with "
                      "passwordless sudo and it installs them")
    session.run(*prefix, "apt-get", "update", "-qq", external=True, silent=True)  # output shown on failure
    session.run(*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
                "--no-install-recommends", *missing, external=True, silent=True)


@nox.session(venv_params=VENV_PARAMS)
def tests(session: nox.Session) -> None:
    """The test suite (slow tests excluded unless you pass `-- -m slow`)."""
    install_system_packages(session, system_packages_for_tests())
    install(session, "test")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "autograder", "assignments", "solutions", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_params=VENV_PARAMS)
def validate(session: nox.Session) -> None:
    """Prove every assignment sound (or pass names: `-- attention`), one assignment per core at
    a time; exits non-zero if not."""
    install(session)
    session.run("python", "-m", "autograder", "validate", "--jobs", str(os.cpu_count() or 1), *session.posargs)


@nox.session(venv_params=VENV_PARAMS)
def grade(session: nox.Session) -> None:
    """Grade a class with grade-all: `-- SUBMISSIONS_ROOT --out DIR [--workers N] [--force] ...`, or
    with no arguments the example class that ships with the repo (reference, skeleton and every
    known bug) into reports/class/ (index.html, grades.csv, one folder per student)."""
    install(session)
    if session.posargs:
        session.run("python", "-m", "autograder", "grade-all", *session.posargs)
        return
    examples = ROOT / "reports" / "example-submissions"
    session.run("python", "-m", "autograder.commands.examples", "class", str(examples), silent=True)
    session.run("python", "-m", "autograder", "grade-all", str(examples), "--out", str(ROOT / "reports" / "class"))
    session.log(f"class summary: {ROOT / 'reports' / 'class' / 'index.html'}")


@nox.session(venv_params=VENV_PARAMS)
def bench(session: nox.Session) -> None:
    """Benchmarks: grading time split by stage; the student side (public tests, .py vs .ipynb,
    the nbconvert baseline); the from-scratch LSTM against nn.LSTM (medians of several runs);
    grade-all with 1 and 2 workers on 8 copies of every reference (speed-up, per-job overhead);
    what the protections add to a worker's start-up (median of 10)."""
    install(session, "bench")
    session.run("python", "benchmarks/bench_grade.py", *session.posargs)
    session.run("python", "benchmarks/bench_student.py", *session.posargs)
    session.run("python", "benchmarks/bench_lstm_lm.py", *session.posargs)
    session.run("python", "benchmarks/bench_batch.py")
    session.run("python", "benchmarks/bench_containment.py")


@nox.session(venv_params=VENV_PARAMS)
def template(session: nox.Session) -> None:
    """Regenerate student_template/ from solutions/."""
    install(session)
    session.run("python", "-m", "autograder", "template", *session.posargs)


@nox.session(venv_params=VENV_PARAMS)
def calibrate(session: nox.Session) -> None:
    """Calibrate a trained-behaviour threshold: `-- ASSIGNMENT CHECK --seeds 10 --write`."""
    install(session)
    session.run("python", "-m", "autograder", "calibrate", *(session.posargs or ["--help"]))
