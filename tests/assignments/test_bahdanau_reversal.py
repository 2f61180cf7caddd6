"""The bahdanau_reversal assignment: its checks on correct and broken code, the hidden data, the
written analysis, and the calibration of the trained check.

A full grade trains one model (about 10 s), so the default tests grade only the skeleton end to
end and run every other check in-process (`run_check`) on the reference, the known bugs and
purpose-made variants; the slow tests grade the reference and every known bug through the whole
pipeline and redo the calibration.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO, bug_file, bug_files, caught_by, requires_cuda, run_check, variant_of

from autograder.commands import calibrate
from autograder.pipeline import grade
from autograder.spec import load_spec
from autograder.submission import analysis
from autograder.submission.static import analyse
from autograder.toolkit.check import CheckContext, load_checks

NAME = "bahdanau_reversal"
FOLDER = REPO / "assignments" / NAME
REFERENCE = REPO / "solutions" / f"{NAME}.py"
SKELETON = REPO / "student_template" / NAME / f"{NAME}.py"
BUGS = bug_files(NAME)
QUICK = ["vocabulary", "module_shapes", "encoder_ignores_padding", "attention_weights", "adam_matches_pytorch", "clip_gradients", "compute_loss",
         "teacher_forcing", "greedy_stops_at_eos", "train_and_evaluate", "attention_figure"]
ALL_CHECKS = [*QUICK[:6], "from_scratch", *QUICK[6:], "trained_reversal"]
MASK_FILL = '            scores = scores.masked_fill(mask, float("-inf"))\n'
TEACHER = "            x = tgt[:, t:t + 1] if teacher_force else logits.argmax(dim=-1, keepdim=True)\n"


@pytest.fixture(autouse=True)
def one_thread():
    """Grading runs torch with one thread; so do these in-process checks."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def graded(path: Path, device: str = "cpu"):
    return grade(NAME, path, device=device)


def failed(result) -> list[str]:
    return [outcome.spec.name for outcome in result.outcomes if not outcome.passed]


def variant(tmp_path: Path, replace: dict[str, str] | None = None, append: str = "") -> Path:
    return variant_of(NAME, tmp_path / "variant", replace, append)


def check(name: str, path: Path, seed: int | None = None):
    return run_check(NAME, name, path, seed)


def failing(verdict, *phrases):
    assert not verdict.passed, verdict.message
    for phrase in phrases:
        assert phrase in verdict.message, verdict.message
    return verdict


def static_from_scratch(path: Path):
    """The static from_scratch check on a file, as grading decides it."""
    spec = load_spec(NAME)
    result = analyse(path.read_text(), str(path), required=spec.required_names, allowed_imports=spec.allowed_imports,
                     forbidden=spec.forbidden.calls, scope=spec.forbidden.scope)
    checker = load_checks(spec)["from_scratch"]
    return checker.verdict_static(CheckContext(spec, spec.check("from_scratch"), spec.seed, "cpu"), result)


# ---- end to end --------------------------------------------------------------------------

def test_reference_passes_every_quick_check_and_uses_no_shortcut():
    for name in QUICK:
        verdict = check(name, REFERENCE)
        assert verdict.passed, (name, verdict.message)
    assert static_from_scratch(REFERENCE).passed


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = graded(SKELETON)
    assert result.score == 0 and failed(result) == ALL_CHECKS
    assert all(outcome.verdict.message for outcome in result.outcomes)
    assert "not implemented yet" in result.outcome("trained_reversal").verdict.message
    assert "counts only once" in result.outcome("from_scratch").verdict.message


@pytest.mark.slow
def test_reference_scores_full_marks_within_its_time_caps():
    result = graded(REFERENCE)
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]
    assert result.score == result.max_score == 32
    trained = result.outcome("trained_reversal")
    assert "threshold 80%" in trained.verdict.message  # its time against the cap: `autograder validate`
    assert result.outcome("attention_figure").verdict.figures[0].startswith(b"\x89PNG")


@requires_cuda
def test_reference_scores_full_marks_on_cuda():
    result = graded(REFERENCE, "cuda")
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]


@pytest.mark.parametrize("bug", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_fails_exactly_its_quick_checks(bug):
    """Every check but the trained one (validate and the slow tests run that); from_scratch is
    earned only with adam_matches_pytorch and clip_gradients."""
    lost = [name for name in QUICK if not check(name, bug).passed]
    if not static_from_scratch(bug).passed or {"adam_matches_pytorch", "clip_gradients"} & set(lost):
        lost.append("from_scratch")
    assert sorted(lost) == sorted(name for name in caught_by(bug) if name != "trained_reversal")


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_loses_exactly_the_checks_it_declares(bug):
    assert sorted(failed(graded(bug))) == sorted(caught_by(bug))


def test_the_hidden_words_and_the_answers_never_reach_the_student_folder():
    from importlib import import_module

    load_checks(load_spec(NAME))  # imports the assignment's check modules as a package
    words = import_module(f"_assignment_{NAME}.hidden_checks").WORDS
    folder = REPO / "student_template" / NAME
    assert not list(folder.rglob("hidden_checks.py")) and not list(folder.rglob("bugs"))
    answer = "usually looks back at the first source word"  # from the reference's written analysis
    solution_line = "scores = scores.masked_fill(mask, float(\"-inf\"))"
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert not any(re.search(rb"\b%s\b" % word.encode(), text) for word in words), path
            assert answer.encode() not in text and solution_line.encode() not in text, path
    assert "trained_reversal" not in (folder / "_public" / "public.json").read_text()


def test_the_written_analysis_is_collected_from_the_reference_and_is_a_placeholder_in_the_skeleton():
    spec = load_spec(NAME).analysis
    assert spec is not None and len(spec.questions) == 4
    answered = analysis.collect(spec, REFERENCE, None)
    assert answered.answered and answered.todo_left == 0
    assert all(answer for _, answer in answered.paired())
    blank = analysis.collect(spec, SKELETON, None)
    assert not blank.answered and blank.todo_left == 4
    handout = (FOLDER / "handout.md").read_text()
    assert "## Written analysis" not in [line.strip() for line in handout.splitlines()]  # only mentioned, not a heading
    assert all(" ".join(question.split()[:6]) in " ".join(handout.split()) for question in spec.questions)


# ---- vocabulary and shapes ---------------------------------------------------------------

def test_vocabulary_names_what_is_off(tmp_path):
    swapped = variant(tmp_path / "specials", {'SPECIALS = ["<PAD>", "<SOS>", "<EOS>", "<UNK>"]':
                                              'SPECIALS = ["<PAD>", "<EOS>", "<SOS>", "<UNK>"]'})
    failing(check("vocabulary", swapped), "a fresh Vocabulary()", "word2idx['<SOS>'] = 2")
    joined = variant(tmp_path / "joined", {"        return words\n": "        return \" \".join(words)\n"})
    failing(check("vocabulary", joined), "should return a list of words, not one string")
    no_eos = variant(tmp_path / "eos", {"        if add_eos:\n            ids.append(EOS_IDX)\n": ""})
    failing(check("vocabulary", no_eos), "<EOS> = 2 goes at the end only when add_eos=True")


def test_module_shapes_give_a_share_per_case(tmp_path):
    stacked = variant(tmp_path, {"        return outputs, attentions\n": "        return outputs, torch.stack(attentions, 1)\n"})
    verdict = failing(check("module_shapes", stacked), "5 of 6 cases right", "a list of T - 1 = 4 tensors")
    assert verdict.fraction == pytest.approx(5 / 6)


# ---- the encoder and padding -------------------------------------------------------------

GRU_OVER_PADDING = "        outputs, hidden = self.gru(self.dropout(self.embedding(src)))\n"


def test_encoder_check_passes_a_packed_encoder_whatever_it_puts_at_padded_positions(tmp_path):
    verdict = check("encoder_ignores_padding", REFERENCE)
    assert verdict.passed and "num_layers 1 and 2" in verdict.message, verdict.message
    ones = variant(tmp_path, {"        # END SOLUTION\n        return outputs, hidden\n":
                              "        outputs = outputs + (src == PAD_IDX).unsqueeze(-1)  # not zeros on padding\n"
                              "        # END SOLUTION\n        return outputs, hidden\n"})
    assert check("encoder_ignores_padding", ones).passed


def test_encoder_check_catches_a_gru_run_over_the_padding_and_names_the_remedy(tmp_path):
    bug = bug_file(NAME, "encoder_runs_over_padding")
    verdict = failing(check("encoder_ignores_padding", bug), "num_layers=1", "in the final hidden",
                      "differs from the same sentence encoded alone", "(src != 0)",
                      "pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)",
                      "pad_packed_sequence(", "total_length=S", "outputs at padded positions are not judged")
    assert "in hidden" in verdict.got and re.search(r"max abs error \d\S* at its real positions", verdict.message)
    # patching the top layer's hidden with the last real output fixes one layer, not two
    assert bug.read_text().count(GRU_OVER_PADDING) == 1
    top_only = tmp_path / f"{NAME}.py"
    top_only.write_text(bug.read_text().replace(GRU_OVER_PADDING, GRU_OVER_PADDING +
                                                "        last = (src != PAD_IDX).sum(dim=1) - 1\n"
                                                "        hidden = hidden.clone()\n"
                                                "        hidden[-1] = outputs[torch.arange(src.shape[0]), last]\n"))
    failing(check("encoder_ignores_padding", top_only), "num_layers=2", "layer 0: ", "in the final hidden",
            "pack_padded_sequence")


def test_encoder_check_reports_a_crash_and_the_skeleton(tmp_path):
    sorted_only = variant(tmp_path, {"enforce_sorted=False": "enforce_sorted=True"})
    verdict = failing(check("encoder_ignores_padding", sorted_only), "lengths 4, 7, 2, 5, 3", "your code raised",
                      "enforce_sorted", "line ")
    assert verdict.got == "RuntimeError"
    failing(check("encoder_ignores_padding", SKELETON), "not implemented yet")


# ---- attention ---------------------------------------------------------------------------

@pytest.mark.parametrize(("edit", "says"), [
    ({MASK_FILL: "            pass\n"}, "must be exactly 0: set the scores of padded positions to -inf"),
    ({MASK_FILL: '            scores = scores.masked_fill(~mask, float("-inf"))\n'}, "contains NaN"),
    ({"        weights = torch.softmax(scores, dim=-1)  # (B, S)\n":
      "        weights = torch.softmax(scores, dim=-1)  # (B, S)\n        weights = torch.softmax(scores, dim=0)\n"},
     "do not sum to 1"),
    ({"        context = torch.bmm(weights.unsqueeze(1), encoder_outputs).squeeze(1)  # (B, H)\n":
      "        context = encoder_outputs.mean(dim=1)\n"}, "the context should be the weighted sum"),
    ({"self.v(torch.tanh(self.W(decoder_hidden).unsqueeze(1) + self.U(encoder_outputs)))":
      "self.v(torch.tanh(0 * self.W(decoder_hidden).unsqueeze(1) + self.U(encoder_outputs)))"},
     "two different decoder states give the same weights"),
])
def test_attention_check_names_the_mistake(tmp_path, edit, says):
    failing(check("attention_weights", variant(tmp_path, edit)), says)


def test_attention_accepts_a_large_finite_fill(tmp_path):
    finite = variant(tmp_path, {MASK_FILL: "            scores = scores.masked_fill(mask, -1e9)\n"})
    assert check("attention_weights", finite).passed


# ---- Adam, clipping, the from-scratch rule -----------------------------------------------

def test_adam_check_names_the_mistake(tmp_path):
    failing(check("adam_matches_pytorch", bug_file(NAME, "adam_no_bias_correction")),
            "parameter 0 (4, 3) after step 1", "what Adam gives with no bias correction")
    eps_inside = variant(tmp_path / "eps", {"p.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))":
                                            "p.sub_(self.lr * m_hat / (v_hat + self.eps).sqrt())"})
    failing(check("adam_matches_pytorch", eps_inside), "lr=0.05", "eps inside the square root")
    stored = variant(tmp_path / "generator", {"        self.params = list(params)": "        self.params = params",
                                              "zip(self.params, self.m, self.v, strict=True)":
                                              "zip(self.params, self.m, self.v)"})
    failing(check("adam_matches_pytorch", stored), "model.parameters()", "changed no parameter", "list(params)")
    moves_all = variant(tmp_path / "none", {"            if p.grad is None:\n                continue\n            m.mul_":
                                            "            if p.grad is None:\n                p.grad = torch.ones_like(p)\n"
                                            "            m.mul_"})
    failing(check("adam_matches_pytorch", moves_all), "never has a gradient", "must not move")


@pytest.mark.parametrize(("replacement", "says"), [
    ("    return total_norm ** 2\n", "the squared norm"),
    ("    return min(total_norm, max_norm)\n", "the norm after clipping"),
])
def test_clip_check_names_a_wrong_total(tmp_path, replacement, says):
    edited = variant(tmp_path, {"    # END SOLUTION\n    return total_norm\n": "    # END SOLUTION\n" + replacement})
    failing(check("clip_gradients", edited), says)


def test_clip_check_catches_per_parameter_clipping_and_a_generator_read_twice(tmp_path):
    failing(check("clip_gradients", bug_file(NAME, "clip_per_parameter")), "clipping the parameters one by one")
    twice = variant(tmp_path, append='''

def clip_gradients(parameters, max_norm=1.0):
    total = sum(float((p.grad ** 2).sum()) for p in parameters if p.grad is not None) ** 0.5
    if total > max_norm:
        for p in parameters:
            if p.grad is not None:
                p.grad.mul_(max_norm / (total + 1e-6))
    return total
''')
    failing(check("clip_gradients", twice), "clip_gradients(model.parameters(), max_norm=0.5)", "make a list first")


def test_from_scratch_finds_pytorch_shortcuts_only_inside_their_scope(tmp_path):
    adam = variant(tmp_path / "adam", append='''

class AdamOptimizer(torch.optim.Adam):
    pass
''')
    verdict = static_from_scratch(adam)
    assert not verdict.passed and "torch.optim" in verdict.message
    clipped = variant(tmp_path / "clip", append='''

def clip_gradients(parameters, max_norm=1.0):
    return float(nn.utils.clip_grad_norm_(parameters, max_norm))
''')
    verdict = static_from_scratch(clipped)
    assert not verdict.passed and "clip_grad_norm_" in verdict.message
    elsewhere = variant(tmp_path / "elsewhere", append='''

def make_optimizer(model):
    return torch.optim.Adam(model.parameters())
''')
    assert static_from_scratch(elsewhere).passed


# ---- the loss, teacher forcing, greedy decoding, training --------------------------------

def test_compute_loss_check_names_the_mistake(tmp_path):
    failing(check("compute_loss", bug_file(NAME, "loss_counts_padding")), "padding included")
    number = variant(tmp_path / "item", {"    return loss\n": "    return loss.item()\n"})
    failing(check("compute_loss", number), "as a tensor", "not a Python number")
    viewed = variant(tmp_path / "view", {"outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1)":
                                         "outputs.view(-1, outputs.shape[-1]), targets.view(-1)"})
    failing(check("compute_loss", viewed), "non-contiguous", "view")
    summed = variant(tmp_path / "sum", {"ignore_index=pad_idx)  # SOLUTION": "ignore_index=pad_idx, reduction='sum')  # SOLUTION"})
    failing(check("compute_loss", summed), "the sum over the non-padding targets")


def test_teacher_forcing_check_names_the_mistake(tmp_path):
    failing(check("teacher_forcing", bug_file(NAME, "teacher_forcing_inverted")), "it looks inverted")
    peeking = variant(tmp_path / "peek", {TEACHER: "            x = tgt[:, t + 1:t + 2] if teacher_force and t + 1 < T "
                                          "else logits.argmax(dim=-1, keepdim=True)\n"})
    failing(check("teacher_forcing", peeking), "step t may only see tgt[:, 0..t-1]")
    never = variant(tmp_path / "never", {TEACHER: "            x = logits.argmax(dim=-1, keepdim=True)\n"})
    failing(check("teacher_forcing", never), "feed tgt[:, t - 1] as the input of step t")


def test_greedy_check_names_the_mistake(tmp_path):
    failing(check("greedy_stops_at_eos", bug_file(NAME, "greedy_never_stops")), "decoding went on after <EOS>")
    late = variant(tmp_path / "late", {"            ids.append(token)\n            rows.append(weights[0].cpu())\n"
                                       "            if token == eos:\n                break\n":
                                       "            if token == eos:\n                break\n"
                                       "            ids.append(token)\n            rows.append(weights[0].cpu())\n"})
    failing(check("greedy_stops_at_eos", late), "<EOS> should be the last element of ids")
    with_sos = variant(tmp_path / "sos", {"    ids, rows = [], []\n": "    ids, rows = [sos], []\n"})
    failing(check("greedy_stops_at_eos", with_sos), "not the <SOS> fed in first")


def test_train_and_evaluate_check(tmp_path):
    summed = variant(tmp_path / "sum", {"    mean = total / len(loader)\n    # END SOLUTION\n    return mean\n\n\ndef evaluate":
                                        "    mean = total\n    # END SOLUTION\n    return mean\n\n\ndef evaluate"})
    failing(check("train_and_evaluate", summed), "return the mean of the batch losses")
    noisy = variant(tmp_path / "noisy", {"            outputs, _ = model(src, tgt, 0.0)\n":
                                         "            model.train()\n            outputs, _ = model(src, tgt, 0.5)\n"})
    failing(check("train_and_evaluate", noisy), "twice gave different losses")


def test_trained_check_fails_a_train_epoch_that_does_not_train_and_a_foreign_vocabulary(tmp_path):
    idle = variant(tmp_path / "idle", append='''

def train_epoch(model, loader, optimizer, device, teacher_forcing_ratio=0.5):
    return 3.0
''')
    verdict = failing(check("trained_reversal", idle), "the threshold is 80%", "hardly fell")
    assert verdict.got == "0.0%"
    sorted_words = variant(tmp_path / "sorted", {"        for word in words:\n            if word not in self.word2idx:":
                                                 "        for word in sorted(words):\n            if word not in self.word2idx:"})
    failing(check("trained_reversal", sorted_words), "should number the words 4, 5, ... in order of first appearance")


def test_trained_verdict_explains_predictions_that_go_on_after_eos():
    spec = load_spec(NAME)
    trained = load_checks(spec)["trained_reversal"]
    ctx = CheckContext(spec, spec.check("trained_reversal"), spec.seed, "cpu")
    inputs = trained.inputs(ctx)
    assert len(inputs["held_src"]) == 200 and "held_tgt" not in inputs
    held = {tuple(source.tolist()) for source in inputs["held_src"]}
    train = {tuple(row[row != 0].tolist()) for row in inputs["train_src"]}
    assert not held & train  # held-out sentences never occur in training
    right = [source.tolist()[:-1][::-1] + [2] for source in inputs["held_src"]]
    perfect = trained.verdict(ctx, inputs, {"ok": True, "value": {"losses": [2.5, 0.1], "predictions": right}}, None)
    assert perfect.passed and "accuracy 100.0%" in perfect.message
    went_on = [ids + [5, 2] for ids in right]
    verdict = trained.verdict(ctx, inputs, {"ok": True, "value": {"losses": [2.5, 0.1], "predictions": went_on}}, None)
    failing(verdict, "accuracy 0.0%", "go on after it")


# ---- the figure --------------------------------------------------------------------------

def test_attention_figure_needs_a_saved_readable_png_with_the_tokens(tmp_path):
    verdict = check("attention_figure", REFERENCE)
    assert verdict.passed and verdict.figures[0].startswith(b"\x89PNG")
    transposed = failing(check("attention_figure", bug_file(NAME, "heatmap_transposed")), "looks transposed")
    assert transposed.figures
    unsaved = variant(tmp_path / "unsaved", {"    fig.savefig(save_path)\n": ""})
    failing(check("attention_figure", unsaved), "wrote no file")
    blank = variant(tmp_path / "blank", {"    fig.savefig(save_path)\n": "    plt.figure().savefig(save_path)\n"})
    failing(check("attention_figure", blank), "blank image")
    unlabelled = variant(tmp_path / "labels", {'    ax.set_xticklabels(src_tokens, rotation=45, ha="right")\n': ""})
    failing(check("attention_figure", unlabelled), "x axis (columns)")


# ---- calibration -------------------------------------------------------------------------

@pytest.mark.slow
def test_calibration_of_trained_reversal_is_sound_and_recorded():
    spec, samples = calibrate.calibrate(NAME, "trained_reversal", seeds=1)
    assert {sample.variant: sample.role for sample in samples} == {
        "reference": "reference", "concat_attention": "alternative", "plain_output": "alternative",
        "encoder_runs_over_padding": "bug", "greedy_never_stops": "bug"}
    assert calibrate.problems(spec, "trained_reversal", samples) == []
    threshold = spec.thresholds["min_accuracy"]
    by_variant = {sample.variant: sample.metrics["exact match"] for sample in samples}
    assert by_variant["reference"] >= threshold + 0.1 and by_variant["greedy_never_stops"] == 0
    assert by_variant["encoder_runs_over_padding"] <= threshold - 0.3  # far below: padded training, unpadded decoding
    recorded = (FOLDER / "calibration" / "trained_reversal.md").read_text()
    assert "--seeds 5" in recorded and "Sound: yes" in recorded
    row = next(line for line in recorded.splitlines() if line.startswith(f"| reference | {spec.seed} |"))
    assert abs(float(row.split("|")[3]) - by_variant["reference"]) < 0.02
