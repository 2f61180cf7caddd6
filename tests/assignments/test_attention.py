"""End to end on the attention assignment: reference, skeleton, known bugs, broken submissions."""

from __future__ import annotations

import builtins

import pytest
from conftest import BUGS, REFERENCE, SKELETON, caught_by, requires_cuda

from autograder.pipeline import grade

ALL_CHECKS = ["shapes", "values_float32", "values_float64", "rows_sum_to_one", "masking",
              "fully_masked_rows", "large_inputs", "gradcheck", "gradient_vs_reference",
              "scaling_demo", "from_scratch"]


def failed(result) -> list[str]:
    return [outcome.spec.name for outcome in result.outcomes if not outcome.passed]


def test_reference_scores_full_marks():
    result = grade("attention", REFERENCE, device="cpu")
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]
    assert result.score == result.max_score == 20
    assert result.facts["workers_started"] == 1 and result.notices == []


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = grade("attention", SKELETON, device="cpu")
    assert result.score == 0 and failed(result) == ALL_CHECKS
    for outcome in result.outcomes:
        assert outcome.verdict.message, outcome.spec.name
    assert "not implemented yet" in result.outcome("values_float32").verdict.message
    assert "counts only once `values_float32` passes" in result.outcome("from_scratch").verdict.message


@pytest.mark.parametrize("variant", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_loses_exactly_the_checks_it_declares(variant):
    result = grade("attention", variant, device="cpu")
    assert sorted(failed(result)) == sorted(caught_by(variant))
    expected_loss = sum(result.spec.check(name).points for name in caught_by(variant))
    assert result.score == result.max_score - expected_loss


def test_syntax_error_fails_every_check_with_one_clear_message(submission):
    result = grade("attention", submission(replace={"def softmax_with_and_without_scaling(Q, K):":
                                                    "def softmax_with_and_without_scaling(Q, K)"}), device="cpu")
    assert result.score == 0 and failed(result) == ALL_CHECKS
    assert any("Syntax error at line" in notice for notice in result.notices)
    assert result.outcome("shapes").verdict.message.startswith("not run: your file has a syntax error at line")
    assert result.facts["workers_started"] == 0


def test_sys_exit_at_import_is_explained_once(submission):
    result = grade("attention", submission(append="\nimport sys\nsys.exit(0)\n"), device="cpu", top_level="all")
    assert result.score == 0
    assert any("could not be imported" in notice and "exit()" in notice for notice in result.notices)
    assert "not run: your code called exit()" in result.outcome("masking").verdict.message


def test_os_exit_inside_one_function_costs_only_its_checks(submission):
    path = submission(replace={"    scores = Q @ K.transpose(-2, -1)\n    weights_unscaled":
                               "    import os\n    os._exit(0)\n    scores = Q @ K.transpose(-2, -1)\n    weights_unscaled"})
    result = grade("attention", path, device="cpu")
    assert failed(result) == ["scaling_demo"]
    assert "exited with code 0" in result.outcome("scaling_demo").verdict.message
    assert result.score == 18
    assert "exited with code 0" in result.facts["incidents"][0]  # recorded for the instructor


def test_endless_loop_in_one_function_times_out_and_the_rest_is_graded(submission):
    path = submission(replace={"    scores = Q @ K.transpose(-2, -1)\n    weights_unscaled":
                               "    while True:\n        pass\n    scores = Q @ K.transpose(-2, -1)\n    weights_unscaled"})
    result = grade("attention", path, device="cpu", timeout_scale=0.15)
    cap = result.spec.check("scaling_demo").timeout_s * 0.15
    assert failed(result) == ["scaling_demo"]
    assert f"did not finish within this check's {cap:g} s limit" in result.outcome("scaling_demo").verdict.message


def test_endless_loop_at_import_fails_within_the_import_cap(submission):
    result = grade("attention", submission(append="\nwhile True:\n    pass\n"), device="cpu", timeout_scale=0.15,
                   top_level="all")
    cap = result.spec.limits.import_timeout_s * 0.15
    assert result.score == 0
    assert any(f"did not finish importing within {cap:g} s" in notice for notice in result.notices)


def test_missing_function_costs_its_checks_and_says_which_name(submission):
    source = REFERENCE.read_text()
    start = source.index("def softmax_with_and_without_scaling")
    path = submission(source[:start] + source[source.index('if __name__ == "__main__":'):])
    result = grade("attention", path, device="cpu")
    assert failed(result) == ["scaling_demo"]
    assert "does not define `softmax_with_and_without_scaling`" in result.outcome("scaling_demo").verdict.message
    assert any("`softmax_with_and_without_scaling`" in notice for notice in result.notices)


def test_submission_runs_only_in_the_worker_and_the_grade_is_deterministic(submission):
    # the sandbox lets the submission write nowhere the test could look: it leaves a mark in
    # the process that imports it and says so on stdout
    path = submission(append="\nimport builtins\nbuiltins.IMPORTED_HERE = True\nprint('imported, pid', __import__('os').getpid())\n")
    first, second = (grade("attention", path, device="cpu", top_level="all") for _ in range(2))
    assert not hasattr(builtins, "IMPORTED_HERE"), "the grading process imported the submission"
    assert all("imported, pid" in result.facts["import_output"] for result in (first, second))
    assert [(o.score, o.verdict.message) for o in first.outcomes] == [(o.score, o.verdict.message) for o in second.outcomes]


def test_folder_submission_with_a_helper_module(submission):
    helper_source = ("import torch\n\ndef stable_softmax(x):\n    return torch.softmax(x, dim=-1)\n\n"
                     "raise SystemExit('a leftover experiment')  # not run: helpers keep their definitions only\n")
    path = submission(replace={"import torch\n": "import torch\nfrom helpers import stable_softmax\n",
                               "weights = torch.softmax(scores, dim=-1)": "weights = stable_softmax(scores)"})
    (path.parent / "helpers.py").write_text(helper_source)
    result = grade("attention", path.parent, device="cpu")
    assert result.score == 20


def test_forbidden_call_hidden_in_a_helper_module_is_found(submission):
    path = submission(replace={"import torch\n": "import torch\nfrom helpers import attend\n",
                               "    output = weights @ V\n": "    output = attend(Q, K, V, mask)\n"})
    (path.parent / "helpers.py").write_text(
        "import torch\nimport torch.nn.functional as F\n\n\ndef attend(q, k, v, mask):\n"
        "    return torch.nan_to_num(F.scaled_dot_product_attention(q, k, v, attn_mask=mask))\n")
    result = grade("attention", path.parent, device="cpu")
    assert failed(result) == ["from_scratch"]
    assert "helpers.py, line 6, in `attend`" in result.outcome("from_scratch").verdict.message


def test_folder_without_the_expected_file_scores_zero_with_a_notice(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = grade("attention", tmp_path, device="cpu")
    assert result.score == 0 and "No attention.py or attention.ipynb in the submission" in result.notices[0]


@pytest.mark.gpu
@requires_cuda
def test_reference_scores_full_marks_on_cuda():
    result = grade("attention", REFERENCE, device="cuda")
    assert result.facts["device"] == "cuda" and result.score == 20, failed(result)
