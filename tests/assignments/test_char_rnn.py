"""The char_rnn assignment: its checks on correct and broken code, end to end grading, the
hidden text, the sampling test's false alarms and power, and the calibration of trained_loss.

(`autograder validate`, which CI runs, grades every known bug through the whole pipeline; here
each check is exercised on purpose-made variants, in-process, one check at a time, and the
bugs are run through every check except the slow trained one.)
"""

from __future__ import annotations

import pytest
import torch
from conftest import REPO, bug_file, bug_files, caught_by, run_check, variant_of

from autograder.commands import calibrate
from autograder.outputs.report import render_html, results_json
from autograder.pipeline import grade
from autograder.spec import load_spec
from autograder.toolkit.check import CheckContext, load_checks
from autograder.toolkit.sampling import sampling_power, temperature_probs

NAME = "char_rnn"
FOLDER = REPO / "assignments" / NAME
REFERENCE = REPO / "solutions" / f"{NAME}.py"
SKELETON = REPO / "student_template" / NAME / f"{NAME}.py"
BUGS = bug_files(NAME)
QUICK_CHECKS = ["vocabulary", "examples", "shapes", "initial_loss", "hidden_state", "train_history",
                "sample_output", "sample_temperature", "loss_curves"]
FORWARD = "        states, hidden = self.rnn(self.embedding(x), hidden)  # states (B, T, H)\n"
DRAW = "            index = torch.multinomial(probs, 1, generator=generator)  # (1,)\n"


@pytest.fixture(autouse=True)
def one_thread():
    """Grading runs torch with one thread; so do these in-process checks (and they do not fight
    over the cores with whatever else runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def variant(tmp_path, replace=None, append=""):
    return variant_of(NAME, tmp_path / "variant", replace, append)


def failing(verdict, *phrases):
    assert not verdict.passed, verdict.message
    for phrase in phrases:
        assert phrase in verdict.message, verdict.message
    return verdict


# ---- the whole pipeline ------------------------------------------------------------------

def test_reference_scores_full_marks_and_the_report_shows_the_loss_curves():
    result = grade(NAME, REFERENCE, device="cpu")
    assert [o.spec.name for o in result.outcomes if not o.passed] == []
    assert result.score == result.max_score == 25
    trained = result.outcome("trained_loss").verdict.message
    assert "threshold 2.2" in trained and "character frequencies only 3.058" in trained
    assert "the previous character only 2.430" in trained
    assert render_html(result, view="student").count("data:image/png;base64,") == 1
    tests = {test["tags"][0]: test for test in results_json(result)["tests"]}
    assert tests["trained_loss"]["visibility"] == "hidden"


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = grade(NAME, SKELETON, device="cpu")
    assert result.score == 0
    assert all(not o.passed and o.verdict.message for o in result.outcomes)
    assert all("not implemented yet" in o.verdict.message for o in result.outcomes)


def test_the_hidden_text_never_reaches_the_student_folder():
    text = (FOLDER / "data" / "moby_dick.txt").read_text()
    phrases = [" ".join(text.split()[i:i + 6]).encode() for i in (40, 5000, 20000)]
    folder = REPO / "student_template" / NAME
    assert not list(folder.rglob("moby_dick*")) and not list(folder.rglob("hidden_checks.py"))
    for path in folder.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(phrase in content for phrase in phrases), path
    assert "trained_loss" not in (folder / "_public" / "public.json").read_text()


@pytest.mark.parametrize("bug", BUGS, ids=lambda path: path.parent.name)
def test_each_known_bug_fails_exactly_its_quick_checks(bug):
    """Every check but trained_loss (validate and the calibration cover that one)."""
    failed = [name for name in QUICK_CHECKS if not run_check(NAME, name, bug).passed]
    assert failed == [name for name in caught_by(bug) if name != "trained_loss"]


# ---- vocabulary and examples -------------------------------------------------------------

@pytest.mark.parametrize(("edit", "message"), [
    ({'    text = "".join(itos[int(index)] for index in ids)  # SOLUTION':
      "    text = [itos[int(index)] for index in ids]  # SOLUTION"}, "should give the text back, as one str"),
    ({"ids = torch.tensor([stoi[char] for char in text], dtype=torch.long)  # SOLUTION":
      "ids = torch.tensor([stoi[char] for char in text], dtype=torch.int32)  # SOLUTION"}, "int64 ids"),
    ({"    stoi = {char: index for index, char in enumerate(itos)}\n":
      "    stoi = {char: index for index, char in enumerate(itos)}\n    itos = itos[::-1]\n"}, "itos[stoi[c]] == c"),
    ({"    itos = sorted(set(text))\n": "    itos = sorted(set(text.lower()))\n"}, "one entry per distinct character"),
])
def test_vocabulary_names_what_is_inconsistent(tmp_path, edit, message):
    first_seen = variant(tmp_path / "unsorted", {"    itos = sorted(set(text))\n": "    itos = list(dict.fromkeys(text))\n"})
    assert run_check(NAME, "vocabulary", first_seen).passed  # any order of the ids will do
    failing(run_check(NAME, "vocabulary", variant(tmp_path, edit)), message)


def test_examples_accept_any_stride_and_explain_a_bad_shift(tmp_path):
    overlapping = variant(tmp_path / "stride1", append='''
def make_examples(ids, seq_len):
    windows = ids.unfold(0, seq_len + 1, 1)
    return windows[:, :-1].clone(), windows[:, 1:].clone()
''')
    assert run_check(NAME, "examples", overlapping).passed
    failing(run_check(NAME, "examples", bug_file(NAME, "targets_not_shifted")), "the targets are not shifted")
    backwards = variant(tmp_path / "backwards", append='''
def make_examples(ids, seq_len):
    windows = ids.unfold(0, seq_len + 1, seq_len)
    return windows[:, 1:].clone(), windows[:, :-1].clone()
''')
    failing(run_check(NAME, "examples", backwards), "shifted the wrong way")
    gaps = variant(tmp_path / "gaps", append='''
def make_examples(ids, seq_len):
    windows = ids.unfold(0, seq_len + 1, 2 * seq_len)
    return windows[:, :-1].clone(), windows[:, 1:].clone()
''')
    assert run_check(NAME, "examples", gaps).passed  # the contract accepts any stride between rows
    reversed_text = variant(tmp_path / "reversed", append='''
def make_examples(ids, seq_len):
    windows = ids.flip(0).unfold(0, seq_len + 1, seq_len)
    return windows[:, :-1].clone(), windows[:, 1:].clone()
''')
    failing(run_check(NAME, "examples", reversed_text), "is not 9 consecutive ids of the input")


# ---- the model ---------------------------------------------------------------------------

def test_shapes_catch_an_ignored_cell_and_a_model_that_is_not_batch_first(tmp_path):
    verdict = failing(run_check(NAME, "shapes", bug_file(NAME, "cell_ignored")), "a pair (h, c)")
    assert verdict.fraction == pytest.approx(4 / 7)  # rnn and gru build; lstm twice and the cell comparison fail
    time_first = variant(tmp_path, {", num_layers=num_layers, batch_first=True)": ", num_layers=num_layers)"})
    verdict = failing(run_check(NAME, "shapes", time_first), "(num_layers, B, H)")
    assert "(1, 3, 16)" in verdict.expected and "(1, 7, 16)" in verdict.got


def test_initial_loss_fails_logits_that_are_confident_before_training(tmp_path):
    verdict = run_check(NAME, "initial_loss", REFERENCE)
    assert verdict.passed and "ln V = 3.689" in verdict.message
    loud = variant(tmp_path, {"        logits = self.output(states)  # (B, T, V)\n":
                              "        logits = 10 * self.output(states)  # (B, T, V)\n"})
    failing(run_check(NAME, "initial_loss", loud), "near ln V = 3.689", "logits spread by")


def test_hidden_state_catches_a_dropped_state_and_a_wrong_layer(tmp_path):
    failing(run_check(NAME, "hidden_state", bug_file(NAME, "hidden_reset_every_step")),
            "gives the same logits as forward(x2)")
    top_layer_only = variant(tmp_path, {FORWARD: FORWARD + "        hidden = states[:, -1].unsqueeze(0).repeat("
                                        "self.num_layers, 1, 1) if self.cell != 'lstm' else hidden\n"})
    verdict = failing(run_check(NAME, "hidden_state", top_layer_only), "for every layer")
    assert verdict.fraction == pytest.approx(1 / 3)  # rnn and gru fail; lstm is left alone


# ---- train_model -------------------------------------------------------------------------

def test_train_history_needs_in_place_training_and_one_loss_per_epoch(tmp_path):
    copying = variant(tmp_path / "copy", {"    history = {\"train_loss\": [], \"val_loss\": []}\n    # BEGIN":
                                          "    history = {\"train_loss\": [], \"val_loss\": []}\n"
                                          "    import copy\n    model = copy.deepcopy(model)\n    # BEGIN"})
    failing(run_check(NAME, "train_history", copying), "left the model's parameters unchanged")
    no_val = variant(tmp_path / "noval", {'        history["val_loss"].append(evaluate(model, X_val, Y_val, batch_size))\n':
                                          ""})
    failing(run_check(NAME, "train_history", no_val), "history['val_loss'] should be a list with one loss per epoch")


def test_trained_loss_fails_a_model_that_was_never_trained(tmp_path):
    untrained = variant(tmp_path, append='''
def train_model(model, train_ids, val_ids, *, epochs, seq_len, batch_size, lr, clip=1.0):
    return {"train_loss": [4.0] * epochs, "val_loss": [4.0] * epochs}
''')
    verdict = failing(run_check(NAME, "trained_loss", untrained), "the threshold is 2.2",
                      "no better than knowing how common each character is")
    assert verdict.got.startswith("4.")  # about ln 74 = 4.30


@pytest.mark.slow
@pytest.mark.parametrize(("bug", "hint"), [("targets_not_shifted", "shifts the targets by one"),
                                           ("hidden_reset_every_step", "only the previous character gets")])
def test_trained_loss_explains_the_known_bugs(bug, hint):
    failing(run_check(NAME, "trained_loss", bug_file(NAME, bug)), "the threshold is 2.2", hint)


# ---- sample ------------------------------------------------------------------------------

def test_sample_output_needs_the_prefix_and_the_generator(tmp_path):
    assert run_check(NAME, "sample_output", REFERENCE).passed
    global_rng = variant(tmp_path / "rng", {DRAW: "            index = torch.multinomial(probs, 1)  # (1,)\n"})
    failing(run_check(NAME, "sample_output", global_rng), "pass `generator` to every random draw")
    no_prefix = variant(tmp_path / "prefix", {"    text = prefix + decode(new, itos)\n": "    text = decode(new, itos)\n"})
    failing(run_check(NAME, "sample_output", no_prefix), "should start with the prefix")


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_the_reference_sampler_passes_the_statistical_test_for_other_grading_seeds(seed):
    assert run_check(NAME, "sample_temperature", REFERENCE, seed=seed).passed


def test_sample_temperature_names_the_common_mistakes(tmp_path):
    failing(run_check(NAME, "sample_temperature", bug_file(NAME, "temperature_multiplied")),
            "fit softmax(logits * T) (the temperature multiplied, not divided) instead")
    failing(run_check(NAME, "sample_temperature", bug_file(NAME, "argmax_sampling")),
            "fit the argmax of the logits (greedy decoding, no sampling) instead")
    ignored = variant(tmp_path, {"probs = torch.softmax(logits[0, -1] / temperature, dim=-1)":
                                 "probs = torch.softmax(logits[0, -1], dim=-1)"})
    failing(run_check(NAME, "sample_temperature", ignored), "temperature=0.5",
            "fit softmax(logits) (the temperature ignored) instead")


def test_the_sampling_test_has_power_against_the_mistakes_it_should_catch():
    """At the spec's settings and the grader's table: each mistake is caught at T = 0.5 and at
    T = 2 separately (the handout's numbers come from 20 tables and 200 chains each)."""
    spec = load_spec(NAME)
    check = load_checks(spec)["sample_temperature"]
    ctx = CheckContext(spec, spec.check("sample_temperature"), spec.seed, "cpu")
    inputs = check.inputs(ctx)
    table, generator = inputs["table"], torch.Generator().manual_seed(0)
    for temperature in (0.5, 2.0):
        null = temperature_probs(table, temperature)
        for wrong in (temperature_probs(table, 1 / temperature), temperature_probs(table, 1.0)):
            power = sampling_power(null, wrong, first_token=1, length=inputs["length"],
                                   alpha=spec.thresholds["sampling_alpha"], trials=40, generator=generator)
            assert power == 1.0


# ---- the loss curves ---------------------------------------------------------------------

def test_loss_curves_need_each_history_labelled_in_a_legend(tmp_path):
    verdict = run_check(NAME, "loss_curves", REFERENCE)
    assert verdict.passed and verdict.figures[0].startswith(b"\x89PNG")
    swapped = failing(run_check(NAME, "loss_curves", bug_file(NAME, "curves_swapped")), "swapped")
    assert swapped.figures  # the student sees the figure anyway
    no_legend = variant(tmp_path / "legend", {"    ax.legend()\n": ""})
    failing(run_check(NAME, "loss_curves", no_legend), "call `ax.legend()`")
    axes = variant(tmp_path / "axes", {"    fig.tight_layout()\n    # END SOLUTION\n    return fig":
                                       "    fig.tight_layout()\n    # END SOLUTION\n    return ax"})
    failing(run_check(NAME, "loss_curves", axes), "not the Axes")


# ---- calibration -------------------------------------------------------------------------

@pytest.mark.slow
def test_calibration_of_trained_loss_is_sound_and_recorded():
    spec, samples = calibrate.calibrate(NAME, "trained_loss", seeds=1)
    roles = {sample.variant: sample.role for sample in samples}
    assert roles == {"reference": "reference", "stateful_bptt": "alternative",
                     "hidden_reset_every_step": "bug", "targets_not_shifted": "bug"}
    assert calibrate.problems(spec, "trained_loss", samples) == []
    by_variant = {sample.variant: sample.metrics["val_loss"] for sample in samples}
    threshold = spec.thresholds["max_val_loss"]
    assert by_variant["reference"] < threshold - 0.2 and by_variant["hidden_reset_every_step"] > threshold + 0.1
    recorded = (FOLDER / "calibration" / "trained_loss.md").read_text()
    assert "--seeds 5" in recorded and "Sound: yes" in recorded and "bigram (previous character only)" in recorded
    row = next(line for line in recorded.splitlines() if line.startswith(f"| reference | {spec.seed} |"))
    assert abs(float(row.split("|")[3]) - by_variant["reference"]) < 0.02
