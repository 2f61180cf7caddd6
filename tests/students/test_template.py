import ast

import pytest

from autograder.spec import SpecError
from autograder.students.template import TEMPLATE_DIR, regenerate, skeleton

SOLUTION = '''
def f(x):
    """Doc."""
    # BEGIN SOLUTION: square it
    y = x * x
    # END SOLUTION
    return y


class Model:
    def forward(self, x):
        # BEGIN SOLUTION
        return x
        # END SOLUTION
        total = x + 1  # SOLUTION
'''


def test_regions_become_todo_and_not_implemented_naming_the_function():
    text = skeleton(SOLUTION)
    assert "x * x" not in text and "SOLUTION" not in text
    assert "    # TODO: square it\n    raise NotImplementedError('f: square it')" in text
    assert "raise NotImplementedError('Model.forward: implement Model.forward')" in text  # a method names its class
    assert "total = None  # TODO: compute total" in text
    ast.parse(text)


def test_unbalanced_markers_are_an_error_with_a_line():
    with pytest.raises(SpecError, match=r":3: `# BEGIN SOLUTION` without a matching"):
        skeleton("def f():\n    pass\n    # BEGIN SOLUTION\n    return 1\n")
    with pytest.raises(SpecError, match="without a `# BEGIN SOLUTION`"):
        skeleton("x = 1\n# END SOLUTION\n")


def test_student_template_is_up_to_date_with_the_solutions():
    stale = regenerate(write=False)
    assert stale == [], f"run `autograder template`: {stale} are stale"


def test_student_template_holds_no_solution_code():
    skeletons = list(TEMPLATE_DIR.glob("*/*.py")) + list(TEMPLATE_DIR.glob("*/*.ipynb"))
    assert skeletons
    for path in skeletons:  # the vendored runtime under _public/ is checked in test_public.py
        text = path.read_text()
        assert "# BEGIN SOLUTION" not in text and "# SOLUTION" not in text and "@ K.transpose" not in text, path


def test_cases_that_agree_to_rounding_are_not_stale_but_changed_ones_are():
    import torch

    from autograder.sandbox import wire
    from autograder.students.public import same_cases

    def frame(scale):
        return wire.pack_frame({"shapes": {"inputs": {"Q": torch.ones(2, 3, dtype=torch.float64) * scale},
                                           "expected": None}})
    assert same_cases(frame(1.0), frame(1.0 + 1e-12))
    assert not same_cases(frame(1.0), frame(1.001))
    assert not same_cases(frame(1.0), b"not a frame")


def test_files_no_longer_generated_are_reported_and_removed():
    leftover = TEMPLATE_DIR / "attention" / "old_tests.py"
    leftover.write_text("# from an older version\n")
    try:
        assert leftover in regenerate(write=False)
        assert leftover.is_file()
        regenerate(write=True)
        assert not leftover.exists()
    finally:
        leftover.unlink(missing_ok=True)
