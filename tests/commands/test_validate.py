"""`autograder validate`: a sound assignment passes; each kind of unsoundness is caught."""

from __future__ import annotations

import shutil

from conftest import REFERENCE

from autograder.commands import validate as validate_module
from autograder.commands.cli import main
from autograder.commands.validate import caught_by


def test_caught_by_reads_the_first_line(tmp_path):
    bug = tmp_path / "bug.py"
    bug.write_text("# known bug: off by one | caught by: shapes, masking\nx = 1\n")
    assert caught_by(bug) == ["shapes", "masking"]
    bug.write_text("x = 1\n")
    assert caught_by(bug) == []


def test_unsound_assignments_fail_validation_with_the_reason(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "attention"
    shutil.copytree(REFERENCE.parent.parent / "assignments" / "attention", folder)
    for bug in (folder / "bugs").glob("*.py"):
        bug.unlink()
    reference = REFERENCE.read_text()
    (folder / "bugs" / "harmless.py").write_text(  # claims a bug no check can see
        "# known bug: only a comment differs | caught by: masking\n" + reference)
    mask_ignored = (REFERENCE.parent.parent / "assignments" / "attention" / "bugs" / "mask_ignored.py").read_text()
    (folder / "bugs" / "undeclared.py").write_text(  # loses more checks than it declares
        mask_ignored.replace("| caught by: masking, fully_masked_rows, gradient_vs_reference", "| caught by: masking"))
    monkeypatch.setattr(validate_module, "MIN_TIME_MARGIN", 1e9)  # no reference is that fast
    rows = {row.variant: row for row in validate_module.validate(folder)}

    assert rows["reference (.py)"].ok and rows["reference (.ipynb)"].ok
    assert rows["skeleton (.py)"].ok and rows["skeleton (.ipynb)"].ok
    assert rows["student folder"].ok
    assert not rows["bug: harmless"].ok and rows["bug: harmless"].note == "not caught by: masking"
    assert not rows["bug: undeclared"].ok
    assert rows["bug: undeclared"].note == "also loses: fully_masked_rows, gradient_vs_reference"
    assert not rows["reference time"].ok and "too close to the cap: import" in rows["reference time"].note
    assert all("public tests disagree" not in row.note for row in rows.values())

    monkeypatch.setattr(validate_module, "MIN_TIME_MARGIN", 5.0)
    # the two bugs still make it unsound, also when two processes validate (the same folder twice here)
    assert main(["validate", "--jobs", "2", str(folder), str(folder)]) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())  # rich wraps long lines
    assert err.count("not sound: ") == 4 and err.count(": bug: harmless") == 2
    assert captured.out.count("reference (.py)") == 2
    assert main(["validate", str(folder)]) == 1  # and in this process (--jobs 1)
