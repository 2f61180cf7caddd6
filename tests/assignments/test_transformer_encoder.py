"""End to end on the transformer_encoder assignment: reference, skeleton, known bugs, and the
attention-equivalence, layer-structure and figure checks on small variants of the reference."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from conftest import REPO, bug_file, bug_files, caught_by, run_check, variant_of

from autograder.outputs.report import render_html
from autograder.pipeline import grade
from autograder.toolkit.figures import PNG_SIGNATURE

ASSIGNMENT = "transformer_encoder"
REFERENCE = REPO / "solutions" / f"{ASSIGNMENT}.py"
SKELETON = REPO / "student_template" / ASSIGNMENT / f"{ASSIGNMENT}.py"
BUGS = bug_files(ASSIGNMENT)
ALL_CHECKS = ["positional_encoding", "vocabulary", "mha_shapes", "mha_matches_pytorch", "padding_mask",
              "add_and_norm", "encoder_layer_structure", "permutation_equivariance", "encoder_uses_positions",
              "gradients_flow", "encoder_outputs", "padding_invariance", "heatmap_figure", "from_scratch"]
ERRORS = re.compile(r"max abs error out ([0-9.e+-]+), per-head weights ([0-9.e+-]+), "
                    r"head-averaged weights ([0-9.e+-]+)")


@functools.cache
def graded(path: Path):
    """One full grade per file for the whole module (each takes a few seconds)."""
    return grade(ASSIGNMENT, path, device="cpu")


def failed(result) -> list[str]:
    return [outcome.spec.name for outcome in result.outcomes if not outcome.passed]


def variant(tmp_path: Path, replace: dict[str, str]) -> Path:
    return variant_of(ASSIGNMENT, tmp_path / "variant", replace)


def check_in_process(name: str, path: Path):
    return run_check(ASSIGNMENT, name, path)


def test_reference_scores_full_marks():
    result = graded(REFERENCE)
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]
    assert result.score == result.max_score == 25
    assert [o.spec.name for o in result.outcomes] == ALL_CHECKS
    assert result.facts["workers_started"] == 1 and result.notices == []


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = graded(SKELETON)
    assert result.score == 0 and failed(result) == ALL_CHECKS
    for outcome in result.outcomes:
        assert outcome.verdict.message, outcome.spec.name
    assert "not implemented yet" in result.outcome("mha_matches_pytorch").verdict.message
    assert "counts only once `mha_matches_pytorch` passes" in result.outcome("from_scratch").verdict.message


@pytest.mark.parametrize("bug", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_loses_exactly_the_checks_it_declares(bug):
    result = graded(bug)
    assert sorted(failed(result)) == sorted(caught_by(bug))
    expected_loss = sum(result.spec.check(name).points for name in caught_by(bug))
    assert result.score == result.max_score - expected_loss


def test_mha_equivalence_reports_the_max_abs_errors_for_a_right_and_a_wrong_submission():
    right = graded(REFERENCE).outcome("mha_matches_pytorch").verdict.message
    errors = [float(value) for value in ERRORS.search(right).groups()]
    assert all(0 <= error < 1e-5 for error in errors), right
    wrong = graded(bug_file(ASSIGNMENT, "heads_split_wrong"))
    message = wrong.outcome("mha_matches_pytorch").verdict.message
    out_error, head_error, _ = (float(value) for value in ERRORS.search(message).groups())
    assert out_error > 0.1 and head_error > 0.1
    assert "differs from torch.nn.MultiheadAttention" in message
    assert "view(B, num_heads, L, d_head) (no transpose)" in message  # the diagnosis


def test_mha_equivalence_names_the_attribute_contract(tmp_path):
    path = variant(tmp_path, {"        self.q_proj = nn.Linear(d_model, d_model)\n":
                              "        self.query = nn.Linear(d_model, d_model)\n",
                              "        q = split_heads(self.q_proj(x))\n": "        q = split_heads(self.query(x))\n"})
    verdict = check_in_process("mha_matches_pytorch", path)
    assert not verdict.passed
    assert "has no attribute `q_proj`; the handout fixes four nn.Linear(d_model, d_model) layers" in verdict.message
    assert "query" in verdict.got


@pytest.mark.parametrize(("edit", "says"), [
    ({"        h = self.norm1(x + self.dropout(attended))\n": "        h = self.norm1(self.dropout(attended))\n"},
     "the attention sub-layer is wrong: feed_forward should receive h = norm1(x + dropout(self_attn(x, "
     "key_padding_mask)[0])); it receives norm1(self_attn(x)[0]), without the residual x"),
    ({"        out = self.norm2(h + self.dropout(self.feed_forward(h)))\n":
      "        out = self.norm2(self.dropout(self.feed_forward(h)))\n"},
     "the attention sub-layer is right (feed_forward receives h = norm1(x + self_attn(x)[0])) but the "
     "feed-forward sub-layer is not: the output should be norm2(h + feed_forward(h)); yours equals "
     "norm2(feed_forward(h)), without the residual h"),
    ({"        attended, weights = self.self_attn(x, key_padding_mask=key_padding_mask)\n":
      "        attended, weights = self.self_attn(x)\n"},
     "with a key_padding_mask (lengths 6 and 3): the key_padding_mask is not passed on to self_attn"),
], ids=["no attention residual", "no feed-forward residual", "mask not passed on"])
def test_layer_structure_says_which_sub_layer_is_wrong(tmp_path, edit, says):
    verdict = check_in_process("encoder_layer_structure", variant(tmp_path, edit))
    assert not verdict.passed and says in verdict.message, verdict.message
    assert verdict.expected and "max abs error" in verdict.got


def test_vocabulary_without_lower_casing_keeps_the_encode_point(tmp_path):
    path = variant(tmp_path, {"        for token in sentence.lower().split():\n": "        for token in sentence.split():\n"})
    verdict = check_in_process("vocabulary", path)
    assert verdict.fraction == 0.5 and not verdict.passed
    assert "lower-case each sentence before splitting" in verdict.message
    assert verdict.message.startswith("encode_batch: 2 batches give int64")  # the point it keeps


def test_heatmap_check_embeds_the_png_and_the_report_shows_it():
    result = graded(REFERENCE)
    verdict = result.outcome("heatmap_figure").verdict
    assert verdict.passed and len(verdict.figures) == 1 and verdict.figures[0].startswith(PNG_SIGNATURE)
    page = render_html(result, view="student")
    assert page.count('src="data:image/png;base64,') == 1


SEABORN = '''def plot_attention_heatmap(weights, tokens):
    import seaborn as sns
    fig, ax = plt.subplots()
    sns.heatmap(weights.numpy(), xticklabels=tokens, yticklabels=tokens, cmap="magma", ax=ax)
    return fig


'''
PLOT_START = "def plot_attention_heatmap(weights, tokens):"


def with_plot(tmp_path: Path, function: str) -> Path:
    source = REFERENCE.read_text()
    start, end = source.index(PLOT_START), source.index('if __name__ == "__main__":')
    path = tmp_path / f"{ASSIGNMENT}.py"
    path.write_text(source[:start] + function + source[end:])
    return path


def test_heatmap_check_reads_back_a_seaborn_heatmap(tmp_path):
    verdict = check_in_process("heatmap_figure", with_plot(tmp_path, SEABORN))
    assert verdict.passed, verdict.message
    assert verdict.figures and verdict.figures[0].startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(("edit", "says"), [
    ({"    image = ax.imshow(matrix, cmap=\"viridis\", vmin=0.0)\n":
      "    image = ax.imshow(matrix.T, cmap=\"viridis\", vmin=0.0)\n"},
     "the plotted matrix is not the weights passed in; it is the transpose"),
    ({"    ax.set_xticks(range(len(tokens)))\n    ax.set_xticklabels(tokens, rotation=45, ha=\"right\")\n": ""},
     "x axis (columns): tick labels should be the characters/tokens, one per cell"),
], ids=["transposed", "no x tick labels"])
def test_heatmap_check_fails_with_the_figure_attached(tmp_path, edit, says):
    verdict = check_in_process("heatmap_figure", variant(tmp_path, edit))
    assert not verdict.passed and says in verdict.message, verdict.message
    assert verdict.figures and verdict.figures[0].startswith(PNG_SIGNATURE)
