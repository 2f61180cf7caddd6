import ast

import pytest

from autograder.spec import SpecError
from autograder.template import TEMPLATE_DIR, regenerate, skeleton

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
    assert "raise NotImplementedError('forward: implement forward')" in text
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
    for path in TEMPLATE_DIR.rglob("*.py"):
        text = path.read_text()
        assert "SOLUTION" not in text and "@ K.transpose" not in text, path
