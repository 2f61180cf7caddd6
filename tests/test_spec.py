import shutil

import pytest

from autograder.spec import REPO_ROOT, SpecError, load_spec
from autograder.toolkit.check import load_checks

ATTENTION = REPO_ROOT / "assignments" / "attention"


def test_attention_spec_loads_with_its_checks():
    spec = load_spec("attention")
    assert spec.name == "attention" and spec.max_score == 20
    assert spec.required_names == ("scaled_dot_product_attention", "softmax_with_and_without_scaling")
    assert spec.check("from_scratch").depends_on == ("values_float32",)
    assert "torch.nn.MultiheadAttention" in spec.forbidden.calls
    assert set(load_checks(spec)) == {check.name for check in spec.checks}


def broken_copy(tmp_path, old: str, new: str):
    folder = tmp_path / "attention"
    shutil.copytree(ATTENTION, folder)
    toml = folder / "assignment.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))
    return folder


def line_of(folder, needle: str) -> int:
    return next(i for i, line in enumerate((folder / "assignment.toml").read_text().splitlines(), 1)
                if needle in line)


def test_wrong_type_names_file_line_key_and_fix(tmp_path):
    folder = broken_copy(tmp_path, "points = 3\ntimeout_s = 20\n\n[[checks]]\nname = \"values_float64\"",
                         "points = \"three\"\ntimeout_s = 20\n\n[[checks]]\nname = \"values_float64\"")
    with pytest.raises(SpecError) as error:
        load_spec(folder)
    message, line = str(error.value), line_of(folder, 'points = "three"')
    assert f"assignment.toml:{line}:" in message
    assert "checks[1].points" in message and "Fix:" in message and "number" in message


def test_misspelt_key_is_reported_at_its_line(tmp_path):
    folder = broken_copy(tmp_path, "memory_mb = 4096", "memory_mbs = 4096")
    with pytest.raises(SpecError) as error:
        load_spec(folder)
    assert f":{line_of(folder, 'memory_mbs')}: limits.memory_mbs" in str(error.value)
    assert "allowed keys here" in str(error.value)


def test_unknown_visibility_lists_the_choices(tmp_path):
    folder = broken_copy(tmp_path, 'visibility = "hidden"', 'visibility = "secret"')
    with pytest.raises(SpecError, match="use one of: visible, hidden, after_due_date, after_published"):
        load_spec(folder)


def test_toml_syntax_error_names_the_file(tmp_path):
    folder = broken_copy(tmp_path, "seed = 2024", "seed = = 2024")
    with pytest.raises(SpecError, match=r"assignment.toml: not valid TOML: .*line"):
        load_spec(folder)


def test_duplicate_check_names_and_unknown_prerequisites_are_rejected(tmp_path):
    folder = broken_copy(tmp_path, 'name = "rows_sum_to_one"', 'name = "shapes"')
    with pytest.raises(SpecError, match="used twice"):
        load_spec(folder)
    folder = broken_copy(tmp_path / "b", 'depends_on = ["values_float32"]', 'depends_on = ["nope"]')
    with pytest.raises(SpecError, match="depends on 'nope'"):
        load_spec(folder)


def test_declared_check_without_implementation_is_rejected(tmp_path):
    folder = broken_copy(tmp_path, 'name = "from_scratch"', 'name = "from_scratch_typo"')
    with pytest.raises(SpecError, match=r"from_scratch_typo.*no implementation"):
        load_checks(load_spec(folder))


def test_hidden_check_in_the_student_shipped_module_is_rejected(tmp_path):
    folder = broken_copy(tmp_path, 'name = "shapes"\ntitle', 'name = "shapes"\nvisibility = "hidden"\ntitle')
    with pytest.raises(SpecError, match="ships to students"):
        load_checks(load_spec(folder))


def test_unknown_assignment_lists_the_known_ones():
    with pytest.raises(SpecError, match="known: .*attention"):
        load_spec("no_such_assignment")
