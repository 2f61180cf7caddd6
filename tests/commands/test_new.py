"""`autograder new NAME`: the scaffold of an assignment is sound as it stands."""

from __future__ import annotations

import os
import shutil

import pytest

from autograder.commands.cli import main
from autograder.commands.new import scaffold
from autograder.commands.validate import validate
from autograder.spec import ASSIGNMENTS_DIR, SOLUTIONS_DIR, SpecError, load_spec
from autograder.students.template import TEMPLATE_DIR
from autograder.toolkit.check import load_check_classes


@pytest.fixture
def new_name():
    """A fresh assignment name; whatever `autograder new` made under it is removed afterwards."""
    name = f"scaffold_check_{os.getpid()}"
    yield name
    shutil.rmtree(ASSIGNMENTS_DIR / name, ignore_errors=True)
    shutil.rmtree(TEMPLATE_DIR / name, ignore_errors=True)
    (SOLUTIONS_DIR / f"{name}.py").unlink(missing_ok=True)


def test_a_new_assignment_validates_as_it_stands(new_name, capsys):
    assert main(["new", new_name, "--title", "A scaffold under test"]) == 0
    folder = ASSIGNMENTS_DIR / new_name
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "assignment.toml", "bugs/naive_softmax.patch", "checks.py", "handout.md", "hidden_checks.py"]
    assert "# BEGIN SOLUTION" in (SOLUTIONS_DIR / f"{new_name}.py").read_text()
    assert (TEMPLATE_DIR / new_name / f"{new_name}.py").is_file()
    assert (TEMPLATE_DIR / new_name / "_public" / "vendor" / "checks.py").is_file()
    assert not list((TEMPLATE_DIR / new_name).rglob("hidden_checks*"))

    spec = load_spec(new_name)
    classes = load_check_classes(spec.folder, spec.name)
    visible = {c.name for c in spec.checks if c.visibility == "visible"}
    hidden = {c.name for c in spec.checks if c.visibility != "visible"}
    assert visible and hidden and spec.title == "A scaffold under test"
    assert {classes[name][1] for name in hidden} == {"hidden_checks.py"}

    rows = validate(new_name)
    assert [row for row in rows if not row.ok] == []
    assert {row.variant for row in rows} >= {"reference (.py)", "reference (.ipynb)", "skeleton (.py)",
                                            "bug: naive_softmax", "student folder"}


def test_new_refuses_a_bad_name_or_one_already_taken(new_name, tmp_path):
    with pytest.raises(SpecError, match="not a usable assignment name"):
        scaffold("Bad-Name", assignments=tmp_path, solutions=tmp_path)
    with pytest.raises(SpecError, match="already exists"):
        scaffold("attention")
    assert main(["new", "attention"]) == 2  # a message, nothing written
    assert not list(tmp_path.iterdir())
