"""Known bugs and calibration alternatives as patches (autograder/commands/variants.py)."""

from __future__ import annotations

import shutil

import pytest
from conftest import REFERENCE, REPO

from autograder.commands import variants
from autograder.commands.cli import main
from autograder.spec import load_spec

BUGGY = REFERENCE.read_text().replace("weights = torch.softmax(scores, dim=-1)",
                                      "weights = torch.softmax(scores, dim=-2)  # BUG")


def write_bug(folder, text, name="wrong_axis"):
    (folder / "bugs").mkdir(parents=True, exist_ok=True)
    (folder / "bugs" / f"{name}.patch").write_text(text)
    return folder / "bugs" / f"{name}.patch"


def patch_of(edited: str, header=("Known bug: softmax over the queries", "Caught by: rows_sum_to_one, masking")):
    return variants.make_patch(REFERENCE.read_text(), edited, "solutions/attention.py", list(header))


def test_a_written_patch_gives_back_the_edited_file_and_its_header(tmp_path):
    path = write_bug(tmp_path, patch_of(BUGGY))
    bug = variants._read(path, "bug")
    assert (bug.name, bug.description, bug.caught_by) == (
        "wrong_axis", "softmax over the queries", ("rows_sum_to_one", "masking"))
    assert variants.apply_patch(path.read_text(), REFERENCE.read_text(), path) == BUGGY
    assert path.read_text().count("\n@@ ") == 1  # only the bug's lines, not a copy of the file


def test_a_patch_still_applies_when_the_reference_moved_around_it(tmp_path):
    path = write_bug(tmp_path, patch_of(BUGGY))
    moved = '"""A longer docstring."""\n\n# two new lines above\n' + REFERENCE.read_text() + "\n# and one below\n"
    patched = variants.apply_patch(path.read_text(), moved, path)
    assert patched == moved.replace("dim=-1)", "dim=-2)  # BUG", 1) and "dim=-2)  # BUG" in patched


def test_a_patch_whose_lines_changed_in_the_reference_names_the_file_and_hunk(tmp_path):
    path = write_bug(tmp_path, patch_of(BUGGY))
    changed = REFERENCE.read_text().replace("weights = torch.softmax(scores, dim=-1)",
                                            "weights = scores.softmax(dim=-1)")
    with pytest.raises(variants.PatchError) as error:
        variants.apply_patch(path.read_text(), changed, path)
    message = str(error.value)
    assert str(path) in message and "hunk 1" in message and "torch.softmax(scores, dim=-1)" in message
    assert "autograder bug" in message  # the fix


@pytest.mark.parametrize(("header", "complaint"), [
    ("Caught by: masking\n", "no `Known bug: ...` line"),
    ("Known bug: no checks named\n", "no `Caught by: check_a, check_b` line"),
    ("Known bug: x\nthis line has no key\n", ":2: header line"),
])
def test_a_malformed_header_stops_with_file_line_and_fix(tmp_path, header, complaint):
    diff = patch_of(BUGGY).split("\n\n", 1)[1]
    path = write_bug(tmp_path, header + "\n" + diff)
    with pytest.raises(variants.PatchError) as error:
        variants._read(path, "bug")
    assert str(path) in str(error.value) and complaint in str(error.value) and "Fix:" in str(error.value)


def test_every_shipped_bug_and_alternative_is_a_patch_that_applies_and_differs():
    for folder in sorted((REPO / "assignments").glob("*/assignment.toml")):
        spec = load_spec(folder.parent.name)
        assert not list((spec.folder / "bugs").glob("*.py")), f"{spec.name}: a bug kept as a whole copy"
        reference = spec.reference_path.read_text()
        for variant in variants.known_bugs(spec) + variants.alternatives(spec):
            text = variant.text(spec)
            assert text != reference and compile(text, variant.name, "exec"), variant.path
            assert variant.description, variant.path
            if variant.role == "bug":
                known = {check.name for check in spec.checks}
                assert set(variant.caught_by) <= known, (variant.path, set(variant.caught_by) - known)


def test_the_bug_command_writes_a_patch_validate_can_read(tmp_path, capsys):
    folder = tmp_path / "attention"
    shutil.copytree(REPO / "assignments" / "attention", folder)
    edited = tmp_path / "edited.py"
    edited.write_text(BUGGY)
    spec = load_spec(folder)
    path = variants.write_bug(spec, "wrong_axis", edited, "softmax over the queries", ["rows_sum_to_one"])
    bug = next(bug for bug in variants.known_bugs(spec) if bug.name == "wrong_axis")
    assert path == folder / "bugs" / "wrong_axis.patch" and bug.text(spec) == BUGGY
    assert bug.caught_by == ("rows_sum_to_one",)
    with pytest.raises(variants.PatchError, match="has no checks \\['no_such_check'\\]"):
        variants.write_bug(spec, "other", edited, "x", ["no_such_check"])
    edited.write_text(REFERENCE.read_text())
    with pytest.raises(variants.PatchError, match="the reference unchanged"):
        variants.write_bug(spec, "other", edited, "x", ["masking"])
    assert main(["bug", str(folder), "other", str(edited), "--what", "x", "--caught-by", "masking"]) == 2
    assert not (folder / "bugs" / "other.patch").exists()
