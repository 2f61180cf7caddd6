"""The student folder: notebook skeleton, public tests run with plain pytest, nothing hidden."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import REFERENCE, REPO, bug_file

from autograder.pipeline import grade
from autograder.spec import load_spec
from autograder.submission.source import read_submission

STUDENT = REPO / "student_template" / "attention"


@pytest.fixture
def student_folder(tmp_path):
    folder = tmp_path / "attention"
    shutil.copytree(STUDENT, folder, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return folder


def run_pytest(folder, *args):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=folder,
                          capture_output=True, text=True, env=env, timeout=300)


def test_public_tests_pass_on_the_reference_with_the_points_in_the_summary(student_folder):
    shutil.copy(REFERENCE, student_folder / "attention.py")
    done = run_pytest(student_folder)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "9 passed" in done.stdout and "attention.py: 18 / 18 points on the public checks run" in done.stdout
    assert "also runs 2 check(s) not shown here, worth 2 points" in done.stdout
    where = subprocess.run([sys.executable, "-c", "import conftest, autograder; print(autograder.__file__)"],
                           cwd=student_folder, capture_output=True, text=True)
    assert where.stdout.strip() == str(student_folder / "_public" / "vendor" / "autograder" / "__init__.py")


def test_public_tests_fail_on_the_skeleton_with_the_autograders_own_messages(student_folder):
    done = run_pytest(student_folder, "--submission", "attention.py")
    assert done.returncode == 1 and "9 failed" in done.stdout
    graded = grade("attention", student_folder / "attention.py", device="cpu")
    for check in ("shapes", "masking", "from_scratch"):
        outcome = graded.outcome(check)
        assert f"{check} (0/{outcome.spec.points:g} points): {outcome.text()}" in done.stdout, check


def test_the_vendored_runtime_needs_only_torch_numpy_and_pytest(student_folder):
    shutil.copy(REFERENCE, student_folder / "attention.py")
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('psutil', 'jinja2', 'rich', 'jsonschema', 'tomli', 'nbformat'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.path.insert(0, '_public/vendor')\n"
        "from pathlib import Path\n"
        "from autograder.students.local import LocalGrader, load_bundle\n"
        "bundle = load_bundle(Path('.'))\n"
        "grader = LocalGrader(bundle, Path('attention.py'))\n"
        "print(sum(grader.outcome(check.name).score for check in bundle.spec.checks))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=student_folder, capture_output=True, text=True)
    assert done.stdout.strip() == "18.0", done.stderr[-2000:]


def test_a_bug_fails_the_same_public_checks_locally_and_on_the_autograder(student_folder):
    bug = bug_file("attention", "mask_ignored")
    shutil.copy(bug, student_folder / "attention.py")
    done = run_pytest(student_folder, "-rf")
    graded = grade("attention", student_folder / "attention.py", device="cpu")
    failing_visible = [o.spec.name for o in graded.outcomes if not o.passed and o.spec.visibility == "visible"]
    assert failing_visible == ["masking", "fully_masked_rows", "gradient_vs_reference"]
    for name in failing_visible:
        assert f"FAILED test_public.py::test_public_check[{name}]" in done.stdout
    assert f"{len(failing_visible)} failed, {9 - len(failing_visible)} passed" in done.stdout


def test_the_notebook_saved_last_is_tested_unless_one_is_chosen(student_folder):
    shutil.copy(REFERENCE, student_folder / "attention.py")
    notebook = student_folder / "attention.ipynb"
    os.utime(notebook, (time.time() + 5, time.time() + 5))  # the skeleton notebook, saved after the script
    done = run_pytest(student_folder)
    assert "public checks on attention.ipynb" in done.stdout and done.returncode == 1
    assert "cell 13, line 4: assignment `output, weights = scaled_dot_product_attention(Q, K, V)` not run" \
        in done.stdout  # the notebook's try-it cell is listed as not run
    assert run_pytest(student_folder, "--submission", "attention.py").returncode == 0


def test_the_notebook_skeleton_holds_the_handout_and_the_skeleton_code():
    import nbformat

    notebook = nbformat.read(STUDENT / "attention.ipynb", as_version=4)
    nbformat.validate(notebook)
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "## 4. How it is graded" in markdown and "pytest --submission attention.ipynb" in markdown
    assert "raise NotImplementedError('scaled_dot_product_attention:" in code
    assert read_submission(STUDENT / "attention.ipynb").notices == []  # it reads cleanly


def solution_lines() -> list[str]:
    """The reference's code inside its solution regions (what students must write)."""
    lines, inside = [], False
    for line in REFERENCE.read_text().splitlines():
        if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
            inside = "BEGIN" in line
        elif inside and line.strip() and not line.strip().startswith("#"):
            lines.append(line.strip())
    return lines


def test_the_student_folder_holds_nothing_hidden():
    spec = load_spec("attention")
    hidden = [check for check in spec.checks if check.visibility != "visible"]
    solution = solution_lines()
    assert hidden and len(solution) > 5, "there must be something to keep out"
    for path in STUDENT.rglob("*"):
        if not path.is_file() or "__pycache__" in path.parts or path.name == "handout.md":
            continue  # the handout is public by design (it may describe hidden checks in words)
        assert path.name != "hidden_checks.py", path
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code")
        for check in hidden:
            assert check.name not in text and check.title not in text, (path, check.name)
        leaked = [line for line in solution if line in text]
        assert not leaked and "# BEGIN SOLUTION" not in text and "# END SOLUTION" not in text, (path, leaked)
    public = json.loads((STUDENT / "_public" / "public.json").read_text())
    assert [c["name"] for c in public["checks"]] == [c.name for c in spec.checks if c.visibility == "visible"]


@pytest.mark.slow
def test_an_endless_loop_fails_its_test_by_the_checks_own_timeout(student_folder):
    looping = REFERENCE.read_text().replace("    scores = Q @ K.transpose(-2, -1)\n    weights_unscaled",
                                            "    while True:\n        pass\n    weights_unscaled")
    (student_folder / "attention.py").write_text(looping)
    done = run_pytest(student_folder, "--submission", "attention.py")
    assert "1 failed, 8 passed" in done.stdout and "Timeout (>20.0s" in done.stdout
