"""The lstm_lm assignment: its checks on correct and broken code, end to end grading, the hidden
corpus, the sampling test's false alarms and power, and the calibration of the trained checks.

Full grades train three models (about 20 s), so the module grades the reference and the skeleton
once each; known bugs are run check by check in-process (`run_check`), except in the slow tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from conftest import REPO, bug_file, bug_files, caught_by, requires_cuda, run_check, variant_of

from autograder.commands import calibrate
from autograder.pipeline import grade
from autograder.spec import load_spec
from autograder.submission.static import analyse
from autograder.toolkit.check import CheckContext, load_checks
from autograder.toolkit.sampling import sampling_power, temperature_probs

NAME = "lstm_lm"
REFERENCE = REPO / "solutions" / f"{NAME}.py"
SKELETON = REPO / "student_template" / NAME / f"{NAME}.py"
BUGS = bug_files(NAME)
TRAINED = ["trained_lstm", "trained_scratch", "trained_attention"]
VISIBLE = ["lstm_cell_matches_pytorch", "lm_shapes", "log_probs_normalised", "state_carries", "scratch_uses_context",
           "attention_causal", "greedy_generate", "sample_generate", "perplexity"]
ALL_CHECKS = [VISIBLE[0], "from_scratch", *VISIBLE[1:], *TRAINED]
CELL_UPDATE = "        c = f * c + i * g\n"
SAMPLE_DRAW = "ids.append(int(torch.multinomial(probs.cpu(), 1, generator=generator)))"
SAMPLE_PROBS = "probs = torch.softmax(log_probs[0, -1] / temperature, dim=-1)"


@functools.cache
def graded(path: Path, device: str = "cpu"):
    return grade(NAME, path, device=device)


def failed(result) -> list[str]:
    return [outcome.spec.name for outcome in result.outcomes if not outcome.passed]


def variant(tmp_path: Path, replace: dict[str, str] | None = None, append: str = "") -> Path:
    return variant_of(NAME, tmp_path / "variant", replace, append)


def check(name: str, path: Path, seed: int | None = None):
    return run_check(NAME, name, path, seed)


def from_scratch(path: Path):
    """The static from_scratch check on a file, as grading decides it."""
    spec = load_spec(NAME)
    analysis = analyse(path.read_text(), str(path), required=spec.required_names,
                       allowed_imports=spec.allowed_imports, forbidden=spec.forbidden.calls,
                       scope=spec.forbidden.scope)
    checker = load_checks(spec)["from_scratch"]
    return checker.verdict_static(CheckContext(spec, spec.check("from_scratch"), spec.seed, "cpu"), analysis)


# ---- end to end ---------------------------------------------------------------------------

def test_reference_scores_full_marks():
    result = graded(REFERENCE)
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]
    assert result.score == result.max_score == 33
    assert [o.spec.name for o in result.outcomes] == ALL_CHECKS
    for name in TRAINED:
        message = result.outcome(name).verdict.message
        assert "threshold 11" in message and "before training" in message, message
    assert "max abs error 1" in result.outcome("lstm_cell_matches_pytorch").verdict.message  # ~1e-15


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = graded(SKELETON)
    assert result.score == 0 and failed(result) == ALL_CHECKS
    assert all(outcome.verdict.message for outcome in result.outcomes)
    assert "not implemented yet" in result.outcome("trained_attention").verdict.message
    assert "counts only once `lstm_cell_matches_pytorch` passes" in result.outcome("from_scratch").verdict.message


def test_the_corpus_never_reaches_the_student_folder():
    corpus = (REPO / "assignments" / NAME / "data" / "moby_dick.txt").read_text()
    phrases = [" ".join(corpus.split()[start:start + 6]) for start in (40, 5000, 20000)]
    folder = REPO / "student_template" / NAME
    assert not [path for path in folder.rglob("*.txt") if path.name != "student_libraries.txt"]  # the vendored list of libraries
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(phrase.encode() in data for phrase in phrases), path
    public = (folder / "_public" / "public.json").read_text()
    assert not any(name in public for name in TRAINED)
    assert not (folder / "_public" / "vendor" / "hidden_checks.py").exists()


@pytest.mark.parametrize("bug", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_fails_exactly_its_visible_checks(bug):
    """Every check but the trained ones (validate and the slow test below run those);
    from_scratch is earned only with lstm_cell_matches_pytorch."""
    lost = [name for name in VISIBLE if not check(name, bug).passed]
    lost += [] if from_scratch(bug).passed and VISIBLE[0] not in lost else ["from_scratch"]
    assert sorted(lost) == sorted(name for name in caught_by(bug) if name not in TRAINED)


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=[path.parent.name for path in BUGS])
def test_each_known_bug_loses_exactly_the_checks_it_declares(bug):
    result = graded(bug)
    assert sorted(failed(result)) == sorted(caught_by(bug))


@requires_cuda
def test_reference_scores_full_marks_on_cuda():
    result = graded(REFERENCE, "cuda")
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]


# ---- LSTMCell against nn.LSTMCell, and the from-scratch rule ------------------------------

@pytest.mark.parametrize(("bug", "says"), [
    ("gate_order_swapped", "gates read in the order i, f, o, g (PyTorch stacks the rows as i, f, g, o)"),
    ("forget_gate_tanh", "the forget gate with tanh instead of sigmoid"),
    ("cell_forgets_everything", "c' = i * g (the forget term f * c is missing)"),
])
def test_cell_check_names_the_mistake(bug, says):
    verdict = check("lstm_cell_matches_pytorch", bug_file(NAME, bug))
    assert not verdict.passed and says in verdict.message, verdict.message
    assert "differs from torch.nn.LSTMCell" in verdict.message and "max abs error h (given (h0, c0))" in verdict.got


@pytest.mark.parametrize(("edit", "says"), [
    ({"self.weight_ih = nn.Parameter(": "self.W_ih = nn.Parameter(", "x @ self.weight_ih.T": "x @ self.W_ih.T"},
     "has no parameter `weight_ih`"),
    ({"            zeros = x.new_zeros(x.shape[0], self.hidden_size)\n":
      "            zeros = x.new_ones(x.shape[0], self.hidden_size)\n"}, "look at state=None"),
    ({CELL_UPDATE: "        c = f * c + i * g\n        h = torch.tanh(c)\n        return h, c\n"},
     "the output gate is missing"),
    ({"h @ self.weight_hh.T": "h @ self.weight_hh.detach().T"}, "no gradient reached weight_hh"),
], ids=["parameter renamed", "state None not zeros", "no output gate", "weight_hh detached"])
def test_cell_check_on_contract_state_and_gradient_mistakes(tmp_path, edit, says):
    verdict = check("lstm_cell_matches_pytorch", variant(tmp_path, edit))
    assert not verdict.passed and says in verdict.message, verdict.message


def test_cell_check_reports_wrong_gradients_when_the_outputs_are_right(tmp_path):
    # the same forward values, but the gradient through the cell state is cut
    path = variant(tmp_path, {CELL_UPDATE: "        c = f * (0.5 * c + 0.5 * c.detach()) + i * g\n"})
    verdict = check("lstm_cell_matches_pytorch", path)
    assert not verdict.passed
    assert "h and c are right but the gradients" in verdict.message and "c0" in verdict.message


def test_from_scratch_finds_a_builtin_lstm_in_the_cell_or_the_scratch_models(tmp_path):
    assert from_scratch(REFERENCE).passed  # nn.LSTM in LSTMLanguageModel is allowed
    cell = variant(tmp_path / "cell", {
        "        gates = x @ self.weight_ih.T": "        return torch.lstm_cell(x, (h, c), self.weight_ih, self.weight_hh, "
        "self.bias_ih, self.bias_hh)\n        gates = x @ self.weight_ih.T"})
    verdict = from_scratch(cell)
    assert not verdict.passed and "torch.lstm_cell" in verdict.got and "in `LSTMCell`" in verdict.message
    model = variant(tmp_path / "model", {"        self.cell = LSTMCell(embed_dim, hidden_dim)\n":
                                         "        self.cell = nn.LSTMCell(embed_dim, hidden_dim)\n"})
    verdict = from_scratch(model)
    assert not verdict.passed and "in `ScratchLSTMLanguageModel`" in verdict.message
    assert check("lstm_cell_matches_pytorch", cell).passed  # right numbers, wrong means


# ---- language models ----------------------------------------------------------------------

def test_logits_instead_of_log_probs_fail_normalisation_only(tmp_path):
    path = variant(tmp_path, {"        log_probs = torch.log_softmax(self.output(outputs), dim=-1)\n":
                              "        log_probs = self.output(outputs)\n"})
    assert check("lm_shapes", path).passed
    verdict = check("log_probs_normalised", path)
    assert not verdict.passed and verdict.fraction == pytest.approx(2 / 3)
    assert "look like raw scores (logits): apply torch.log_softmax" in verdict.message


def test_state_check_catches_a_model_that_drops_the_state_it_is_given(tmp_path):
    path = variant(tmp_path, {"        embedded = self.embedding(x)  # (B, T, E)\n        hidden = []\n":
                              "        embedded = self.embedding(x)  # (B, T, E)\n        hidden, state = [], None\n"})
    verdict = check("state_carries", path)
    assert not verdict.passed and verdict.fraction == pytest.approx(2 / 3)
    assert "start from the state you are given" in verdict.message
    assert check("scratch_uses_context", path).passed


def test_a_scratch_model_without_context_fails_and_a_missing_state_costs_shape_points(tmp_path):
    path = variant(tmp_path, {"            state = self.cell(embedded[:, t], state)\n":
                              "            state = self.cell(embedded[:, t])\n"})
    verdict = check("scratch_uses_context", path)
    assert not verdict.passed and "does not use its context" in verdict.message
    none = variant(tmp_path / "none", {"        log_probs = torch.log_softmax(self.output(torch.stack(hidden, dim=1)), dim=-1)\n":
                                       "        log_probs = torch.log_softmax(self.output(torch.stack(hidden, dim=1)), dim=-1)\n"
                                       "        state = None\n"})
    shapes = check("lm_shapes", none)
    assert shapes.fraction == pytest.approx(3 / 4) and "returned state None" in shapes.message


def test_attention_check_catches_visible_and_hidden_look_ahead(tmp_path):
    verdict = check("attention_causal", bug_file(NAME, "attention_sees_the_future"))
    assert not verdict.passed and "comes after it: mask the scores" in verdict.message
    # weights masked, but the encoder's states are read backwards: step 0 sees the whole sequence
    path = variant(tmp_path, {"        encoded = torch.stack(encoded, dim=1)  # (B, T, H)\n":
                              "        encoded = torch.stack(encoded[::-1], dim=1)  # (B, T, H)\n"})
    verdict = check("attention_causal", path)
    assert not verdict.passed and "changing the tokens after position 0 changed log_probs[:, :1]" in verdict.message


# ---- decoding and perplexity --------------------------------------------------------------

@pytest.mark.parametrize(("edit", "says"), [
    ({"            ids.append(int(log_probs[0, -1].argmax()))\n":
      "            ids.append(int(torch.multinomial(log_probs[0, -1].exp(), 1)))\n"}, "does not follow the most likely"),
    ({"    # END SOLUTION\n    return ids\n\n\ndef sample_generate":
      "    # END SOLUTION\n    return torch.tensor(ids)\n\n\ndef sample_generate"}, "not a tensor (use .tolist())"),
    ({"    # END SOLUTION\n    return ids\n\n\ndef sample_generate":
      "    # END SOLUTION\n    return ids[len(prefix_ids):]\n\n\ndef sample_generate"}, "prefix_ids followed by"),
], ids=["samples", "tensor", "no prefix"])
def test_greedy_check_names_what_is_wrong(tmp_path, edit, says):
    assert check("greedy_generate", REFERENCE).passed
    verdict = check("greedy_generate", variant(tmp_path, edit))
    assert not verdict.passed and says in verdict.message, verdict.message


@pytest.mark.parametrize("seed", range(5005, 5011))
def test_a_correct_sampler_passes_for_several_grading_seeds(seed):
    verdict = check("sample_generate", REFERENCE, seed=seed)
    assert verdict.passed, verdict.message


@pytest.mark.parametrize(("edit", "says"), [
    ({}, "softmax(log_probs * T) (the temperature multiplying, not dividing)"),
    ({SAMPLE_PROBS: "probs = torch.softmax(log_probs[0, -1], dim=-1)"}, "softmax(log_probs) (the temperature ignored)"),
    ({SAMPLE_DRAW: "ids.append(int(probs.argmax()))"}, "the argmax (greedy decoding, no sampling)"),
    ({SAMPLE_DRAW: "ids.append(int(torch.multinomial(probs.cpu(), 1)))"}, "so that the generator decides"),
], ids=["temperature multiplied", "temperature ignored", "argmax", "generator ignored"])
def test_sampling_check_names_the_wrong_distribution(tmp_path, edit, says):
    path = bug_file(NAME, "temperature_multiplied") if not edit else variant(tmp_path, edit)
    verdict = check("sample_generate", path)
    assert not verdict.passed and says in verdict.message, verdict.message


@pytest.mark.slow
def test_sampling_power_against_the_usual_mistakes_is_one():
    """The handout's numbers, with fewer simulations: every mistake is caught at T = 0.5 and 2."""
    spec = load_spec(NAME)
    sample = load_checks(spec)["sample_generate"]
    inputs = sample.inputs(CheckContext(spec, spec.check("sample_generate"), spec.seed, "cpu"))
    table, alpha = inputs["table"], spec.thresholds["sampling_alpha"]
    for temperature in (0.5, 2.0):
        null = temperature_probs(table, temperature)
        for wrong in (temperature_probs(table, 1 / temperature), temperature_probs(table, 1.0), null):
            power = sampling_power(null, wrong, first_token=inputs["prefix"][-1], length=inputs["length"], alpha=alpha,
                                   trials=100, generator=torch.Generator().manual_seed(0))
            assert power == (0.0 if wrong is null else 1.0)


@pytest.mark.parametrize(("edit", "says"), [
    ({}, "your value is what log base 2 for the negative log-likelihood, then exp gives"),
    ({"    return math.exp(total / count)\n": "    return total / count\n"}, "the mean negative log-likelihood, without exp"),
    ({"    return math.exp(total / count)\n": "    return math.exp(-total / count)\n"}, "the sign flipped"),
], ids=["base 2", "no exp", "sign"])
def test_perplexity_check_recognises_the_usual_mistakes(tmp_path, edit, says):
    path = bug_file(NAME, "perplexity_base_2") if not edit else variant(tmp_path, edit)
    verdict = check("perplexity", path)
    assert not verdict.passed and says in verdict.message, verdict.message


def test_perplexity_accepts_other_chunkings(tmp_path):
    assert check("perplexity", REFERENCE).passed
    non_overlapping = variant(tmp_path, {  # chunks of seq_len ids: the transitions between chunks are skipped
        "            chunk = ids[start:start + seq_len + 1]\n": "            chunk = ids[start:start + seq_len]\n"
                                                                "            if len(chunk) < 2:\n"
                                                                "                continue\n",
        "            log_probs = model(chunk[:-1].unsqueeze(0))[0]  # (1, t, V)\n":
        "            log_probs = model(chunk[:-1].unsqueeze(0))[0]\n"})
    verdict = check("perplexity", non_overlapping)
    assert verdict.passed, verdict.message


# ---- trained checks -----------------------------------------------------------------------

def test_trained_check_fails_a_model_that_only_learns_character_frequencies(tmp_path):
    frozen = variant(tmp_path, append='''
_Trainable = ScratchLSTMLanguageModel


class ScratchLSTMLanguageModel(_Trainable):
    """Sees a zero input at every position: it can only learn how often each character occurs."""

    def forward(self, x, state=None):
        return super().forward(torch.zeros_like(x), state)
''')
    verdict = check("trained_scratch", frozen)
    assert not verdict.passed
    assert "above the threshold of 11" in verdict.message and "only character frequencies scores 22.1" in verdict.message


def test_trained_check_rejects_unnormalised_scores(tmp_path):
    spec = load_spec(NAME)
    trained = load_checks(spec)["trained_attention"]
    ctx = CheckContext(spec, spec.check("trained_attention"), spec.seed, "cpu")
    inputs = trained.inputs(ctx)
    rows, length = inputs["held_x"].shape
    scores = torch.zeros(rows, length, inputs["sizes"][0])
    got = {"before": scores[:64], "after": scores, "first_loss": 4.3, "losses": [2.0]}
    with pytest.raises(Exception, match="are not log-probabilities"):
        trained.verdict(ctx, inputs, got, None)
    baselines = trained.baselines(ctx, inputs)
    assert baselines["uniform"] == 77 and 21 < baselines["unigram (character frequencies)"] < 23


@pytest.mark.slow
def test_calibration_of_the_trained_checks_is_sound_and_recorded():
    for name in TRAINED:
        spec, samples = calibrate.calibrate(NAME, name, seeds=1)
        assert {sample.variant: sample.role for sample in samples} == {
            "reference": "reference", "luong_attention": "alternative", "per_gate_weights": "alternative"}
        assert calibrate.problems(spec, name, samples) == []
        threshold = spec.thresholds[f"{name.removeprefix('trained_')}_max_perplexity"]
        assert all(sample.metrics["perplexity after"] < threshold * 0.9 for sample in samples)
        recorded = (REPO / "assignments" / NAME / "calibration" / f"{name}.md").read_text()
        assert "--seeds 5" in recorded and "Sound: yes" in recorded and "unigram (character frequencies) 22.1" in recorded
