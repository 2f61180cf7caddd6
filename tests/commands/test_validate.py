"""`autograder validate`: a sound assignment passes; each kind of unsoundness is caught."""

from __future__ import annotations

import shutil

from conftest import REFERENCE

from autograder.commands import validate as validate_module
from autograder.commands import variants
from autograder.commands.cli import main


def test_unsound_assignments_fail_validation_with_the_reason(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "attention"
    shutil.copytree(REFERENCE.parent.parent / "assignments" / "attention", folder)
    for bug in (folder / "bugs").glob("*.patch"):
        bug.unlink()
    reference = REFERENCE.read_text()
    (folder / "bugs" / "harmless.patch").write_text(variants.make_patch(  # claims a bug no check can see
        reference, reference.replace("import math\n", "import math  # a comment\n"), "solutions/attention.py",
        ["Known bug: only a comment differs", "Caught by: masking"]))
    mask_ignored = (REFERENCE.parent.parent / "assignments" / "attention" / "bugs" / "mask_ignored.patch").read_text()
    (folder / "bugs" / "undeclared.patch").write_text(  # loses more checks than it declares
        mask_ignored.replace("Caught by: masking, fully_masked_rows, gradient_vs_reference", "Caught by: masking"))
    (folder / "bugs" / "stale.patch").write_text(  # written against lines the reference no longer has
        mask_ignored.replace("\n-    if mask is not None:\n", "\n-    if mask is not None:  # since rewritten\n", 1))
    (folder / "bugs" / "whole_copy.py").write_text("# known bug: the old way | caught by: masking\n" + reference)
    monkeypatch.setattr(validate_module, "MIN_TIME_MARGIN", 1e9)  # no reference is that fast
    rows = {row.variant: row for row in validate_module.validate(folder)}

    assert rows["reference (.py)"].ok and rows["reference (.ipynb)"].ok
    assert rows["skeleton (.py)"].ok and rows["skeleton (.ipynb)"].ok
    assert rows["student folder"].ok
    assert not rows["bug: harmless"].ok and rows["bug: harmless"].note == "not caught by: masking"
    assert not rows["bug: undeclared"].ok
    assert rows["bug: undeclared"].note == "also loses: fully_masked_rows, gradient_vs_reference"
    assert not rows["bug: stale"].ok and "stale.patch: hunk 1" in rows["bug: stale"].note
    assert not rows["bug: whole_copy"].ok and "is a whole copy of a solution" in rows["bug: whole_copy"].note
    assert not rows["reference time"].ok and "too close to the cap: import" in rows["reference time"].note
    assert all("public tests disagree" not in row.note for row in rows.values())

    monkeypatch.setattr(validate_module, "MIN_TIME_MARGIN", 5.0)
    # the two bugs still make it unsound, also when two processes validate (the same folder twice here)
    assert main(["validate", "--jobs", "2", str(folder), str(folder)]) == 1
    captured = capsys.readouterr()
    err = " ".join(captured.err.split())  # rich wraps long lines
    assert err.count("not sound: ") == 2 * 4 and err.count(": bug: harmless") == 2
    assert captured.out.count("reference (.py)") == 2
    assert main(["validate", str(folder)]) == 1  # and in this process (--jobs 1)
