"""Notebook and script submissions shaped like real student work, graded end to end."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from conftest import REFERENCE, write_notebook

from autograder.outputs.report import write_reports
from autograder.pipeline import grade


def reference_functions() -> dict[str, str]:
    source = REFERENCE.read_text()
    return {node.name: ast.get_source_segment(source, node) for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef)}


SDPA, DEMO = reference_functions()["scaled_dot_product_attention"], reference_functions()["softmax_with_and_without_scaling"]
FIRST_ATTEMPT = "def scaled_dot_product_attention(Q, K, V, mask=None):\n    return Q, K  # a first try, redefined below"
TRAINING = ("%%time\nlosses = []\nfor step in range(10**9):  # minutes of 'training' if it ever ran\n"
            "    x = torch.randn(64, 64) @ torch.randn(64, 64)\n    losses.append(x.mean().item())")


def student_notebook(path, *extra_cells, counts=None):
    """Imports after shell lines and magics, a first attempt redefined in a later cell, a
    training loop, plotting, scratch calls; cells last run out of order."""
    cells = [("md", "# Attention homework"),
             "!pip install einops\n%matplotlib inline\nimport math\nimport torch\nimport matplotlib.pyplot as plt",
             FIRST_ATTEMPT,
             ("md", "Now for real:"),
             SDPA + "\n\nQ = torch.randn(2, 4, 8)\nout, w = scaled_dot_product_attention(Q, Q, Q)\nprint(w.sum(-1))",
             DEMO,
             TRAINING,
             "plt.plot(losses)\nplt.show()",
             *extra_cells]
    code_cells = sum(1 for cell in cells if not isinstance(cell, tuple))
    return write_notebook(path, cells, counts=counts or list(range(code_cells, 0, -1)))


def test_a_realistic_student_notebook_gets_full_marks_quickly(tmp_path):
    path = student_notebook(tmp_path / "attention.ipynb")
    result = grade("attention", path, device="cpu")  # the training cell, run, would time out the import
    assert result.score == 20, [o.verdict.message for o in result.outcomes if not o.passed]
    skipped = "\n".join(result.skipped)
    for expected in ("cell 2, line 1: shell command `!pip install einops` removed",
                     "cell 2, line 2: IPython magic `%matplotlib inline` removed",
                     "cell 5, line", "assignment `out, w = scaled_dot_product_attention(Q, Q, Q)` not run",
                     "cell 7, line 1: cell magic `%%time` removed",
                     "cell 7, line 3: loop `for step in range(10 ** 9):` not run",
                     "cell 8, line 1: top-level call `plt.plot(...)` not run"):
        assert expected in skipped, (expected, skipped)
    assert any("out of order" in notice for notice in result.notices)
    paths = write_reports(result, tmp_path / "out")
    html = paths["student_report"].read_text()
    assert f"{len(result.skipped)} top-level statements not run (the grader runs definitions only)" in html
    assert "cell 7, line 3: loop `for step in range(10 ** 9):` not run" in html
    output = json.loads(paths["results"].read_text())["output"]
    assert f"Not run ({len(result.skipped)}; the grader runs definitions only):" in output


def test_a_definition_that_needs_a_skipped_global_fails_in_plain_words(tmp_path):
    needs_global = SDPA.replace("math.sqrt(d_k)", "math.sqrt(d_k) * SCALE_FIX")
    path = write_notebook(tmp_path / "attention.ipynb", [
        "import math\nimport torch", "def compute_fix():\n    return 1.0", "SCALE_FIX = compute_fix()",
        needs_global, DEMO])
    result = grade("attention", path, device="cpu")
    message = result.outcome("values_float32").verdict.message
    assert "`SCALE_FIX` is set only by a top-level statement the grader does not run (cell 3, line 1: " \
           "assignment `SCALE_FIX = compute_fix()`)" in message
    assert any("`scaled_dot_product_attention` uses `SCALE_FIX`" in notice for notice in result.notices)
    assert result.outcome("scaling_demo").passed  # the other function is unaffected


def test_errors_point_at_the_notebook_cell_and_line(tmp_path):
    broken = DEMO.replace("    scores = Q @ K.transpose(-2, -1)\n",
                          "    scores = Q @ K.transpose(-2, -1)\n    raise ValueError('oops')\n")
    path = write_notebook(tmp_path / "attention.ipynb", ["import math\nimport torch", SDPA, ("md", "demo"), broken])
    result = grade("attention", path, device="cpu")
    line = broken.splitlines().index("    raise ValueError('oops')") + 1
    message = result.outcome("scaling_demo").verdict.message
    assert f"at cell 4, line {line} in `softmax_with_and_without_scaling`" in message, message
    assert 'File "attention.ipynb", cell 4, line' in result.outcome("scaling_demo").verdict.details


def test_whole_notebook_mode_runs_everything_within_the_import_cap(tmp_path):
    path = student_notebook(tmp_path / "attention.ipynb")
    result = grade("attention", path, device="cpu", top_level="all", timeout_scale=0.1)
    assert result.score == 0 and result.skipped[0].endswith("removed")  # magics are still removed
    assert any("did not finish importing within 6 s" in notice for notice in result.notices)


def test_a_script_with_a_top_level_main_is_graded_without_running_it(submission):
    path = submission(append="\n\ndef main():\n    import time\n    time.sleep(600)\n\n\nmain()\n")
    result = grade("attention", path, device="cpu")
    assert result.score == 20  # main(), run, would time out the import
    assert any(line.endswith("top-level call `main(...)` not run") for line in result.skipped)


def test_a_broken_notebook_scores_zero_with_a_message_and_the_cli_still_exits_zero(tmp_path):
    path = tmp_path / "attention.ipynb"
    path.write_text('{"cells": [')
    result = grade("attention", path, device="cpu")
    assert result.score == 0 and "is not a readable notebook" in result.notices[0]
    assert result.outcome("shapes").verdict.message == "not run: your notebook could not be read"
    assert result.outcome("from_scratch").verdict.message == "not run: your notebook could not be read"
    done = subprocess.run([sys.executable, "-m", "autograder", "grade", "attention", str(path), "--out",
                           str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "is not a readable notebook" in json.loads((tmp_path / "out" / "results.json").read_text())["output"]


def test_a_folder_with_both_files_grades_the_script_and_says_so(tmp_path, submission):
    path = submission()
    student_notebook(path.parent / "attention.ipynb")
    result = grade("attention", path.parent, device="cpu")
    assert result.score == 20 and "graded attention.py" in result.notices[0]
