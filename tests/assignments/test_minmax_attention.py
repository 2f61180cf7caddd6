"""The minmax_attention assignment: its checks on correct and broken code, end to end grading,
what the student folder holds, and the calibration of trained_accuracy.

(`autograder validate`, which CI runs, grades every known bug through the whole pipeline; here
each check is exercised on purpose-made variants, in-process, one check at a time, and the
bugs are run through every check except the slow trained one.)
"""

from __future__ import annotations

import pytest
import torch
from conftest import (
    REPO,
    alternative_files,
    bug_file,
    bug_files,
    caught_by,
    requires_cuda,
    run_check,
    variant_of,
)

from autograder.commands import calibrate
from autograder.outputs.report import render_html, results_json
from autograder.pipeline import grade
from autograder.sandbox import wire

NAME = "minmax_attention"
FOLDER = REPO / "assignments" / NAME
REFERENCE = REPO / "solutions" / f"{NAME}.py"
SKELETON = REPO / "student_template" / NAME / f"{NAME}.py"
BUGS = bug_files(NAME)
ALTERNATIVES = alternative_files(NAME)
QUICK_CHECKS = ["dataset", "shapes", "weights_are_distributions", "train_model_step", "train_model_batches",
                "attention_figure"]

SPLIT = "    n_train = round(train_fraction * len(x))\n"
PERMUTATION = "    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))\n"
SOFTMAX = ("        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)"
           "  # (B, heads, T, T)\n")
OPTIMIZER = "    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)\n"
SHUFFLE = "        order = torch.randperm(len(train_x), device=device)\n"
LOSS = "            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])\n"
IMSHOW = "        image = ax.imshow(weights[head].numpy(), vmin=0.0, vmax=1.0, cmap=\"viridis\")\n"


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


def failed(result) -> list[str]:
    return [outcome.spec.name for outcome in result.outcomes if not outcome.passed]


# ---- the whole pipeline ------------------------------------------------------------------

@pytest.mark.slow
def test_reference_scores_full_marks_and_the_report_shows_the_attention():
    result = grade(NAME, REFERENCE, device="cpu")
    assert failed(result) == []
    assert result.score == result.max_score == 23
    trained = result.outcome("trained_accuracy").verdict.message
    assert "on max examples" in trained and "on min examples" in trained and "threshold 75% for each" in trained
    assert f"epochs x training examples = {8 * 10923}" in trained
    assert render_html(result, view="student").count("data:image/png;base64,") == 2  # the max and the min example
    tests = {test["tags"][0]: test for test in results_json(result)["tests"]}
    assert tests["trained_accuracy"]["visibility"] == "hidden"


@pytest.mark.slow
@pytest.mark.parametrize("bug", BUGS, ids=lambda path: path.parent.name)
def test_each_known_bug_loses_exactly_the_checks_it_declares(bug):
    assert sorted(failed(grade(NAME, bug, device="cpu"))) == sorted(caught_by(bug))


@requires_cuda
def test_reference_scores_full_marks_on_cuda():
    result = grade(NAME, REFERENCE, device="cuda")
    assert result.facts["device"] == "cuda"
    assert failed(result) == [], [o.verdict.message for o in result.outcomes if not o.passed]


def test_untouched_skeleton_scores_zero_with_a_message_on_every_check():
    result = grade(NAME, SKELETON, device="cpu")
    assert result.score == 0
    assert all(not o.passed and "not implemented yet" in o.verdict.message for o in result.outcomes)


def test_the_student_folder_holds_nothing_hidden():
    folder = REPO / "student_template" / NAME
    assert not list(folder.rglob("hidden_checks.py")) and not list(folder.rglob("calibration"))
    assert "trained_accuracy" not in (folder / "_public" / "public.json").read_text()
    cases = wire.unpack_frame((folder / "_public" / "cases.bin").read_bytes())
    assert sorted(cases) == sorted(QUICK_CHECKS)  # no inputs of the hidden check, hence none of its split
    assert all(case["expected"] is None for case in cases.values())  # no reference answers are needed
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".md", ".ipynb", ".json"):
            assert "held_x" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("bug", BUGS, ids=lambda path: path.parent.name)
def test_each_known_bug_fails_exactly_its_quick_checks(bug):
    """Every check but trained_accuracy (validate, the slow tests and the calibration cover it)."""
    lost = [name for name in QUICK_CHECKS if not run_check(NAME, name, bug).passed]
    assert lost == [name for name in caught_by(bug) if name != "trained_accuracy"]


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=lambda path: path.parent.name)
def test_the_alternative_designs_pass_every_quick_check(alternative):
    assert [name for name in QUICK_CHECKS if not run_check(NAME, name, alternative).passed] == []


# ---- make_dataset ------------------------------------------------------------------------

@pytest.mark.parametrize("rounding", ["int(train_fraction * len(x))", "math.ceil(train_fraction * len(x))"])
def test_dataset_accepts_rounding_down_or_up(tmp_path, rounding):
    changed = variant(tmp_path, {SPLIT: f"    n_train = {rounding}\n"})
    assert run_check(NAME, "dataset", changed).passed


@pytest.mark.parametrize(("edit", "phrases", "right"), [
    ({"    train, test = order[:n_train], order[n_train:]\n": "    train, test = order[:n_train], order\n"},
     ["train and test together should hold all 2 x 128 x 128 examples"], 0),
    ({"    train, test = order[:n_train], order[n_train:]\n":
      "    train, test = order[:n_train], torch.cat([order[n_train:-1], order[:1]])\n"},
     ["appears in both train and test: the two sets must be disjoint"], 0),
    ({PERMUTATION: "    order = torch.arange(len(x))\n"}, ["about half of the training examples are max examples"], 0),
    ({PERMUTATION: "    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))\n"},
     ["gave the same split as make_dataset() (seed 0)"], 3),
    ({PERMUTATION: "    order = torch.randperm(len(x))\n"}, ["the same seed must give the same split"], 3),
    ({SPLIT: "    n_train = len(x) // 3\n"}, ["train_fraction x 32768 = 16384.00 examples, rounded"], 3),
    ({"    return x[train], y[train], x[test], y[test]\n":
      "    return x[train].int(), y[train], x[test].int(), y[test]\n"}, ["should hold int64 tokens"], 0),
    ({"        rows.append(torch.stack([a, torch.full_like(a, op), b, torch.full_like(a, SEP_TOKEN)], dim=1))\n":
      "        rows.append(torch.stack([a, torch.full_like(a, op), b], dim=1))\n"},
     ["should have shape (N, 4)"], 0),
])
def test_dataset_names_what_is_wrong_and_gives_a_share_per_call(tmp_path, edit, phrases, right):
    verdict = failing(run_check(NAME, "dataset", variant(tmp_path, edit)), *phrases)
    assert verdict.fraction == pytest.approx(right / 4)


def test_dataset_says_when_max_and_min_are_swapped():
    verdict = failing(run_check(NAME, "dataset", bug_file(NAME, "labels_swapped")),
                      "(max and min are swapped everywhere)")
    assert verdict.fraction == 0


# ---- the network -------------------------------------------------------------------------

def test_shapes_want_one_weight_matrix_per_head(tmp_path):
    averaged = variant(tmp_path, {"        return (logits, weights) if return_attention else logits\n":
                                  "        return (logits, weights.mean(1)) if return_attention else logits\n"})
    verdict = failing(run_check(NAME, "shapes", averaged), "the weights of forward(x, return_attention=True)")
    assert "(5, 4, 4, 4)" in verdict.expected and "(5, 4, 4)" in verdict.got
    assert verdict.fraction == 0


def test_shapes_need_the_pair_and_the_same_logits(tmp_path):
    no_pair = variant(tmp_path / "pair", {"        return (logits, weights) if return_attention else logits\n":
                                          "        return logits\n"})
    failing(run_check(NAME, "shapes", no_pair), "should return a pair (logits, weights)")
    noisy = variant(tmp_path / "noisy", {"        return (logits, weights) if return_attention else logits\n":
                                         "        return (logits + 1, weights) if return_attention else logits\n"})
    failing(run_check(NAME, "shapes", noisy), "should return the same logits as forward(x)")


def test_weights_must_be_distributions_over_the_keys(tmp_path):
    failing(run_check(NAME, "weights_are_distributions", bug_file(NAME, "softmax_over_queries")),
            "the columns sum to 1, not the rows")
    scores = variant(tmp_path, {SOFTMAX: "        weights = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))\n"})
    failing(run_check(NAME, "weights_are_distributions", scores), "negative entries")


# ---- train_model -------------------------------------------------------------------------

@pytest.mark.parametrize(("edit", "phrase"), [
    ({OPTIMIZER: "    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)\n"},
     "AdamW with its default weight_decay=0.01"),
    ({OPTIMIZER: "    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)\n"},
     "Adam with an L2 penalty"),
    ({OPTIMIZER: "    optimizer = torch.optim.AdamW(model.parameters(), weight_decay=weight_decay)\n"},
     "AdamW with its default lr=1e-3 (pass lr=lr)"),
    ({OPTIMIZER: "    optimizer = torch.optim.SGD(model.parameters(), lr=lr)\n"}, "plain SGD"),
    ({"            optimizer.step()\n": ""}, "no step at all"),
    ({LOSS: "            loss = F.cross_entropy(model(train_x[batch]), train_y[batch], label_smoothing=0.3)\n"},
     "check the optimizer"),
    ({LOSS: "            loss = F.cross_entropy(model(train_x[batch]), train_y[batch], reduction='sum')\n"},
     "that is the sum over the batch"),
])
def test_train_model_step_names_the_mistake(tmp_path, edit, phrase):
    failing(run_check(NAME, "train_model_step", variant(tmp_path, edit)), phrase)


def test_train_model_step_accepts_clipping_other_betas_and_a_loss_module(tmp_path):
    changed = variant(tmp_path, {
        OPTIMIZER: "    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, "
                   "betas=(0.8, 0.95))\n",
        LOSS: "            loss = nn.CrossEntropyLoss()(model(train_x[batch]), train_y[batch])\n",
        "            loss.backward()\n": "            loss.backward()\n"
                                     "            nn.utils.clip_grad_norm_(model.parameters(), 0.5)\n"})
    assert run_check(NAME, "train_model_step", changed).passed
    assert run_check(NAME, "train_model_batches", changed).passed


@pytest.mark.parametrize(("edit", "phrase"), [
    ({SHUFFLE: "        order = torch.arange(len(train_x), device=device)\n"}, "came in their original order"),
    ({"    model.train()\n    for _ in range(epochs):\n": "    model.train()\n"
      "    fixed = torch.randperm(len(train_x), device=device)\n    for _ in range(epochs):\n",
      SHUFFLE: "        order = fixed\n"}, "both epochs used the same order"),
    ({SHUFFLE: "        order = torch.randint(len(train_x), (len(train_x),), device=device)\n"},
     "every training example exactly once"),
    ({"        history[\"train_loss\"].append(sum(losses) / len(losses))\n":
      "        history[\"train_loss\"].append(sum(losses) / len(losses))\n"
      "        model(train_x).argmax(-1)  # an accuracy, forgetting torch.no_grad()\n"},
     "with gradients enabled"),
    ({"        history[\"train_loss\"].append(sum(losses) / len(losses))\n":
      "        history[\"train_loss\"] += losses\n"}, "one loss per epoch"),
    ({"        history[\"train_loss\"].append(sum(losses) / len(losses))\n":
      "        history[\"train_loss\"].append(losses[-1])\n"}, "the mean of epoch 1's batch losses"),
])
def test_train_model_batches_names_the_mistake(tmp_path, edit, phrase):
    failing(run_check(NAME, "train_model_batches", variant(tmp_path, edit)), phrase)


def test_train_model_batches_catches_one_step_per_epoch():
    verdict = failing(run_check(NAME, "train_model_batches", bug_file(NAME, "step_once_per_epoch")),
                      "the parameters should change after every batch")
    assert verdict.got == "no change after batch(es) [1, 2, 3, 5, 6, 7]"


# ---- trained_accuracy --------------------------------------------------------------------

def test_trained_accuracy_fails_a_train_model_that_does_not_train(tmp_path):
    lazy = variant(tmp_path, append='''
def train_model(model, train_x, train_y, *, epochs, batch_size, lr=2e-3, weight_decay=1.0):
    return {"train_loss": [4.85] * epochs}
''')
    verdict = failing(run_check(NAME, "trained_accuracy", lazy), "the threshold is 75% for each",
                      "never called the model it was given with gradients enabled")
    assert "0 examples fed forward with gradients" in verdict.message


@pytest.mark.slow
@pytest.mark.parametrize("bug", ["step_once_per_epoch", "causal_mask_upside_down"])
def test_trained_accuracy_leaves_the_broken_networks_at_chance(bug):
    verdict = failing(run_check(NAME, "trained_accuracy", bug_file(NAME, bug)), "about chance")
    assert float(verdict.got.split("max ")[1].split("%")[0]) < 5


@pytest.mark.slow
def test_trained_accuracy_of_the_reference_on_another_grading_seed():
    verdict = run_check(NAME, "trained_accuracy", REFERENCE, seed=1234)
    assert verdict.passed, verdict.message
    assert "Copying the first number would score 5" in verdict.message


# ---- the figure --------------------------------------------------------------------------

def test_attention_figure_shows_both_examples_and_explains_a_transpose():
    verdict = run_check(NAME, "attention_figure", REFERENCE)
    assert verdict.passed, verdict.message
    assert len(verdict.figures) == 2 and all(png.startswith(b"\x89PNG") for png in verdict.figures)
    transposed = failing(run_check(NAME, "attention_figure", bug_file(NAME, "plot_transposed")),
                         "the transpose of the head's weights")
    assert len(transposed.figures) == 2  # the student sees the figures anyway


@pytest.mark.parametrize(("edit", "phrase"), [
    ({"    fig, axes = plt.subplots(1, len(weights), figsize=(3 * len(weights) + 1, 3.6), squeeze=False,\n":
      "    weights = weights.mean(0, keepdim=True)\n"
      "    fig, axes = plt.subplots(1, len(weights), figsize=(3 * len(weights) + 1, 3.6), squeeze=False,\n"},
     "draw one heatmap panel per head"),
    ({IMSHOW: "        image = ax.imshow(weights[0].numpy(), vmin=0.0, vmax=1.0, cmap=\"viridis\")\n"},
     "head 1: the plotted matrix is not the weights passed in"),
    ({"        ax.set_xticks(range(len(tokens)))\n": ""}, "x axis (columns): tick labels"),
    ({"        ax.set_yticklabels(tokens)\n": "        ax.set_yticklabels(tokens[::-1])\n"},
     "y axis (rows): tick labels"),
    ({"    # END SOLUTION\n    return fig\n": "    # END SOLUTION\n    return axes[0, 0]\n"}, "not the Axes"),
])
def test_attention_figure_names_what_is_wrong(tmp_path, edit, phrase):
    failing(run_check(NAME, "attention_figure", variant(tmp_path, edit)), phrase)


def test_attention_figure_accepts_seaborn(tmp_path):
    seaborn = variant(tmp_path, append='''
def plot_attention(weights, tokens):
    import seaborn as sns

    fig, axes = plt.subplots(1, len(weights), figsize=(4 * len(weights), 3.5))
    for head, ax in enumerate(axes):
        sns.heatmap(weights[head].numpy(), ax=ax, xticklabels=tokens, yticklabels=tokens, vmin=0, vmax=1)
        ax.set_title(f"head {head}")
    return fig
''')
    assert run_check(NAME, "attention_figure", seaborn).passed


# ---- calibration -------------------------------------------------------------------------

@pytest.mark.slow
def test_calibration_of_trained_accuracy_is_sound_and_recorded():
    spec, samples = calibrate.calibrate(NAME, "trained_accuracy", seeds=1)
    roles = {sample.variant: sample.role for sample in samples}
    assert roles == {"reference": "reference", "flat_readout": "alternative", "torch_multihead": "alternative",
                     "causal_mask_upside_down": "bug", "step_once_per_epoch": "bug"}
    assert calibrate.problems(spec, "trained_accuracy", samples) == []
    threshold = spec.thresholds["min_accuracy"]
    by_variant = {sample.variant: sample.metrics for sample in samples}
    assert min(by_variant["reference"]["max_accuracy"], by_variant["reference"]["min_accuracy"]) > threshold + 0.1
    assert by_variant["step_once_per_epoch"]["accuracy"] < 0.1
    recorded = (FOLDER / "calibration" / "trained_accuracy.md").read_text()
    assert "--seeds 5" in recorded and "Sound: yes" in recorded and "copy the first number" in recorded
    row = next(line for line in recorded.splitlines() if line.startswith(f"| reference | {spec.seed} |"))
    assert abs(float(row.split("|")[3]) - by_variant["reference"]["accuracy"]) < 0.02
