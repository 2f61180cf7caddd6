"""Grades that hold on files shaped like real students' (tests/real_style.py): Colab and wandb
imports, `;` lines, non-ASCII text, a byte-order mark, a module the grading environment lacks,
code written for a Colab GPU, and a reduction that would break valid code (the grader's fault).
"""

from __future__ import annotations

import ast

import pytest
import real_style
from conftest import REPO, bug_file, write_notebook

from autograder.pipeline import GraderError, grade
from autograder.spec import load_spec
from autograder.submission import source as source_module

ATTENTION = (REPO / "solutions" / "attention.py").read_text()


def failed(result):
    return [o.spec.name for o in result.outcomes if not o.passed]


def line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if fragment in line)


@pytest.mark.parametrize("bom", [False, True], ids=["utf-8", "byte-order-mark"])
def test_a_colab_script_with_semicolon_lines_and_wandb_gets_full_marks(tmp_path, bom):
    path = tmp_path / "attention.py"
    path.write_bytes(real_style.script(ATTENTION, bom=bom))
    result = grade("attention", path, device="cpu")
    assert failed(result) == [] and result.score == result.max_score == 20
    text = path.read_bytes().decode("utf-8-sig")
    stand_ins = next(n for n in result.notices if n.startswith("Logging and display tools"))
    for module, fragment in [("google.colab", "from google.colab"), ("wandb", "import wandb"),
                             ("IPython", "from IPython.display")]:
        assert f"`{module}` (line {line_of(text, fragment)})" in stand_ins
    assert not any("placeholder" in notice for notice in result.notices)
    for fragment, what in [("torch.manual_seed(42)", "top-level call `torch.manual_seed(...)`"),
                           ('print("✓ libraries', "top-level call `print(...)`"),
                           ("plt.plot(history)", "top-level call `plt.ylabel(...)`"), ("main()\n", "")]:
        line = line_of(text, fragment) if fragment != "main()\n" else len(text.splitlines())
        assert any(item.startswith(f"line {line}: {what}") for item in result.skipped), (fragment, result.skipped)


def test_a_colab_notebook_of_the_reference_gets_full_marks_and_names_cells(tmp_path):
    path = write_notebook(tmp_path / "attention.ipynb", real_style.notebook_cells(ATTENTION))
    result = grade("attention", path, device="cpu")
    assert failed(result) == [] and result.score == 20
    assert any(item.startswith("cell 2, line 1: shell command `!pip install -q wandb`") for item in result.skipped)
    plotting = next(number for number, cell in enumerate(real_style.notebook_cells(ATTENTION), start=1)
                    if not isinstance(cell, tuple) and "plt.plot(history)" in cell)
    assert any(item.startswith(f"cell {plotting}, line 2: top-level call `plt.") for item in result.skipped)


def test_a_minmax_notebook_whose_training_logs_to_wandb_gets_full_marks(tmp_path):
    """A train_model that calls wandb.log each epoch is still a correct training loop: it
    earns the trained checks too."""
    reference = (REPO / "solutions" / "minmax_attention.py").read_text()
    epoch_end = '        history["train_loss"].append(sum(losses) / len(losses))\n'
    assert reference.count(epoch_end) == 1
    logged = reference.replace(epoch_end, epoch_end + '        wandb.log({"loss": history["train_loss"][-1]}); '
                                                      'print(f"epoch ✓ → {history[\'train_loss\'][-1]:.3f}")\n')
    path = write_notebook(tmp_path / "minmax_attention.ipynb", real_style.notebook_cells(logged))
    result = grade("minmax_attention", path, device="cpu")
    assert failed(result) == [] and result.score == result.max_score == 23


def test_a_module_the_environment_lacks_costs_only_the_checks_that_use_it(submission):
    """A placeholder stands in for `sklearn`: the import succeeds; only scaling_demo, whose
    function calls it, fails, with a message naming the module and both lines."""
    path = submission(replace={
        "import torch\n": "import torch\nimport sklearn.utils.extmath as extmath\n",
        "def softmax_with_and_without_scaling(Q, K):\n":
            "def softmax_with_and_without_scaling(Q, K):\n    extmath.softmax(Q.numpy())\n"})
    text = path.read_text()
    result = grade("attention", path, device="cpu")
    assert failed(result) == ["scaling_demo"]
    message = result.outcome("scaling_demo").verdict.message
    assert "`sklearn.utils.extmath.softmax` was used" in message
    assert f"imports it at line {line_of(text, 'import sklearn')}" in message
    assert f"line {line_of(text, 'extmath.softmax(Q')}" in message
    assert [n for n in result.notices if "placeholder" in n and "`sklearn` (line 10)" in n]


def test_code_written_for_a_colab_gpu_is_told_that_grading_runs_on_cpu(submission):
    path = submission(replace={"    d_k = Q.size(-1)\n": '    d_k = Q.size(-1)\n    Q = Q.to(torch.device("cuda"))\n'})
    result = grade("attention", path, device="cpu")
    message = result.outcome("shapes").verdict.message
    assert "grading runs on the CPU" in message and "x.device" in message


def test_a_reduction_that_breaks_valid_code_is_the_graders_failure_not_a_syntax_error(submission, monkeypatch):
    real = source_module.definitions_only

    def broken(text):
        reduction = real(text)
        reduction.text = reduction.text.replace("pass; N = 3", "pass(; N = 3")
        return reduction

    monkeypatch.setattr(source_module, "definitions_only", broken)
    path = submission(append="\nprint('✓'); N = 3\n")
    with pytest.raises(GraderError, match="grader bug, not the student's"):
        grade("attention", path, device="cpu")


def test_the_reduction_keeps_a_notebook_cell_with_a_plot_line_parsing(tmp_path):
    """The issue's report: "syntax error at cell 7, line 6" for a correct notebook."""
    cells = real_style.notebook_cells(ATTENTION)
    prepared = source_module.prepare(write_notebook(tmp_path / "attention.ipynb", cells))
    ast.parse(prepared.run_text)
    spec = load_spec("attention")
    assert all(name in prepared.run_text for name in spec.required_names)


def test_a_folder_submissions_own_module_is_imported_and_its_imports_get_substitutes(tmp_path):
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "attention.py").write_text(ATTENTION.replace("import torch\n", "import torch\nfrom helpers import log\n", 1))
    (folder / "helpers.py").write_text("import wandb\nimport sklearn\n\n\ndef log(**values):\n    wandb.log(values)\n")
    result = grade("attention", folder, device="cpu")
    assert failed(result) == [] and result.score == 20
    assert any("`wandb` (helpers.py, line 1)" in notice for notice in result.notices)
    assert any("`sklearn` (helpers.py, line 2)" in notice for notice in result.notices)
    assert not any("`helpers`" in notice for notice in result.notices)


def test_a_real_style_reversal_notebook_whose_encoder_runs_over_padding_loses_only_padding_checks(tmp_path):
    """The student's notebook that reached 13.7% in their own run: seaborn, wandb and Colab in
    the first cell, and a GRU run straight over the padding. It keeps every other unit check."""
    buggy = bug_file("bahdanau_reversal", "encoder_runs_over_padding").read_text()
    path = write_notebook(tmp_path / "bahdanau_reversal.ipynb", real_style.notebook_cells(buggy))
    result = grade("bahdanau_reversal", path, device="cpu")
    assert failed(result) == ["encoder_ignores_padding", "trained_reversal"]
    assert "pack_padded_sequence" in result.outcome("encoder_ignores_padding").verdict.message
    assert any("`wandb`" in notice for notice in result.notices)
    assert not any("placeholder" in notice for notice in result.notices)  # seaborn is installed: a dependency
