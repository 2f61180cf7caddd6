"""Visible checks of the `minmax_attention` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference's numbers: the dataset is judged against
the 32768 examples the grader lists itself, the network by shapes and distributions, and
``train_model`` on a small grader-made model (:class:`TinyNetwork`) whose one AdamW step the
grading process computes itself and whose forward records the batches it is fed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.figures import figure_data, png_bytes, require_figure, require_heatmap
from autograder.toolkit.probe import ContractError, build_module, plain_history
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_finite,
    require_tensor,
    unpack,
    value_of,
)

NUM_VALUES = 128  # the numbers 0 .. 127 (and the 128 output classes)
MAX_TOKEN, MIN_TOKEN, SEP_TOKEN = 128, 129, 130
VOCAB_SIZE = 131
N_EXAMPLES = 2 * NUM_VALUES * NUM_VALUES  # 32768
OPS = {MAX_TOKEN: "max", MIN_TOKEN: "min"}


# ---- the task itself, as the grader knows it ---------------------------------------------

def all_examples() -> tuple[torch.Tensor, torch.Tensor]:
    """Every example (a, op, b, SEP), max examples first, and its label: (32768, 4), (32768,)."""
    a, b = torch.meshgrid(torch.arange(NUM_VALUES), torch.arange(NUM_VALUES), indexing="ij")
    a, b = a.flatten(), b.flatten()
    x = torch.cat([torch.stack([a, torch.full_like(a, op), b, torch.full_like(a, SEP_TOKEN)], dim=1)
                   for op in (MAX_TOKEN, MIN_TOKEN)])
    return x, labels_of(x)


def labels_of(x: torch.Tensor) -> torch.Tensor:
    """max(a, b) for rows with MAX_TOKEN, min(a, b) otherwise."""
    a, b = x[:, 0], x[:, 2]
    return torch.where(x[:, 1] == MAX_TOKEN, torch.maximum(a, b), torch.minimum(a, b))


def codes(x: torch.Tensor) -> torch.Tensor:
    """One integer per valid example (a, op, b, SEP), 0 .. 32767, max examples first."""
    return (x[:, 1] - MAX_TOKEN) * NUM_VALUES * NUM_VALUES + x[:, 0] * NUM_VALUES + x[:, 2]


def show(example) -> str:
    """(17, max, 93, SEP) for a row of tokens."""
    names = {MAX_TOKEN: "max", MIN_TOKEN: "min", SEP_TOKEN: "SEP"}
    return "(" + ", ".join(names.get(int(token), str(int(token))) for token in example) + ")"


def random_examples(count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` distinct examples drawn at random, as (count, 4) int64."""
    x, _ = all_examples()
    return x[torch.randperm(N_EXAMPLES, generator=generator)[:count]]


# ---- make_dataset ------------------------------------------------------------------------

DATASET_CALLS = {
    "default": "make_dataset()",
    "again": "make_dataset(seed=0, train_fraction=1/3)",
    "other_seed": "make_dataset(seed={seed})",
    "half": "make_dataset(seed={seed}, train_fraction=0.5)",
}


class Dataset(Check):
    """Four calls: the defaults, the same seed again, another seed, another fraction. One
    share of the points per call that is right (each must also be a valid split)."""

    name = "dataset"
    needs_reference = False

    def inputs(self, ctx):
        return {"seed": int(torch.randint(1, 10_000, (1,), generator=ctx.generator()))}

    @staticmethod
    def probe(student, inputs, device):
        seed = inputs["seed"]
        return {"default": student.attempt("make_dataset"),
                "again": student.attempt("make_dataset", seed=0, train_fraction=1 / 3),
                "other_seed": student.attempt("make_dataset", seed=seed),
                "half": student.attempt("make_dataset", seed=seed, train_fraction=0.5)}

    def verdict(self, ctx, inputs, got, expected):
        calls = {key: call.format(seed=inputs["seed"]) for key, call in DATASET_CALLS.items()}
        fractions = {"default": 1 / 3, "again": 1 / 3, "other_seed": 1 / 3, "half": 0.5}
        splits, problems, passed = {}, [], []
        for key, call in calls.items():
            try:
                splits[key] = require_split(value_of(got[key], call), call, fractions[key])
                if key == "again" and "default" in splits and splits["again"] != splits["default"]:
                    raise Mismatch(f"{call} gave another split than make_dataset(): the same seed must give the same "
                                   "split (draw the permutation from torch.Generator().manual_seed(seed))",
                                   expected="the same training examples",
                                   got=f"{len(splits['again'] ^ splits['default'])} examples differ")
                if key == "other_seed" and "default" in splits and splits["other_seed"] == splits["default"]:
                    raise Mismatch(f"{call} gave the same split as make_dataset() (seed 0): the split should be "
                                   "random, drawn from the seed it is given", expected="another split",
                                   got="the same training examples")
                passed.append(call)
            except Mismatch as failure:
                problems.append(failure)
        if not problems:
            n_train = len(splits["default"])
            return Verdict.ok(f"all 32768 examples exactly once with the right labels, split {n_train} / "
                              f"{N_EXAMPLES - n_train} at random; the same seed gives the same split, seed "
                              f"{inputs['seed']} another one, and train_fraction=0.5 gives {len(splits['half'])} "
                              "training examples")
        first = problems[0]
        return Verdict.partial(len(passed), len(calls), f"{len(passed)} of {len(calls)} calls right; first problem: "
                               f"{first.message}", expected=first.expected, got=first.got)


def require_split(value, call: str, fraction: float) -> frozenset:
    """The training examples (as codes) of a valid make_dataset result, after checking the
    types, that train and test hold every example exactly once with its label, the size of the
    training set and that it mixes max and min examples."""
    parts = unpack(value, 4, call)
    names = ("train_x", "train_y", "test_x", "test_y")
    for name, part in zip(names, parts, strict=True):
        require_tensor(part, f"{name} from {call}")
        if part.dtype != torch.int64:
            raise Mismatch(f"{name} from {call} should hold int64 tokens (torch.long), as nn.Embedding and "
                           "cross_entropy need", expected="torch.int64", got=str(part.dtype))
    train_x, train_y, test_x, test_y = parts
    for x, y, which in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if x.dim() != 2 or x.shape[1] != 4:
            raise Mismatch(f"{which}_x from {call} should have shape (N, 4): one row (a, op, b, SEP) per example",
                           expected="(N, 4)", got=f"shape {tuple(x.shape)}")
        require_tensor(y, f"{which}_y from {call}", shape=(len(x),))
    x, y = torch.cat([train_x, test_x]), torch.cat([train_y, test_y])
    if len(x) != N_EXAMPLES:
        raise Mismatch(f"{call}: train and test together should hold all 2 x 128 x 128 examples",
                       expected=f"{N_EXAMPLES} rows", got=f"{len(train_x)} + {len(test_x)} = {len(x)}")
    valid = ((x[:, 0] >= 0) & (x[:, 0] < NUM_VALUES) & (x[:, 2] >= 0) & (x[:, 2] < NUM_VALUES)
             & ((x[:, 1] == MAX_TOKEN) | (x[:, 1] == MIN_TOKEN)) & (x[:, 3] == SEP_TOKEN))
    if not valid.all():
        row = int((~valid).nonzero()[0])
        raise Mismatch(f"{call}: every row should be (a, op, b, SEP) with a, b in 0..127, op MAX_TOKEN = 128 or "
                       "MIN_TOKEN = 129 and SEP_TOKEN = 130", expected="rows like (17, 128, 93, 130)",
                       got=f"row {x[row].tolist()}")
    counts = torch.bincount(codes(x), minlength=N_EXAMPLES)
    if (counts != 1).any():
        repeated = int((counts > 1).nonzero()[0])
        example = torch.tensor([repeated % (NUM_VALUES * NUM_VALUES) // NUM_VALUES,
                                MAX_TOKEN + repeated // (NUM_VALUES * NUM_VALUES), repeated % NUM_VALUES, SEP_TOKEN])
        in_train = int((codes(train_x) == repeated).sum())
        where = ("in both train and test: the two sets must be disjoint" if 0 < in_train < counts[repeated] else
                 f"{int(counts[repeated])} times")
        raise Mismatch(f"{call}: every (a, op, b) should appear exactly once across train and test; "
                       f"{show(example)} appears {where}",
                       expected="32768 distinct examples",
                       got=f"{int((counts > 0).sum())} distinct, {int((counts == 0).sum())} missing")
    right = labels_of(x)
    if not torch.equal(y, right):
        row = int((y != right).nonzero()[0])
        swapped = bool((y == labels_of(torch.stack([x[:, 0], 2 * MAX_TOKEN + 1 - x[:, 1], x[:, 2], x[:, 3]], 1)))
                       .all())
        hint = " (max and min are swapped everywhere)" if swapped else ""
        raise Mismatch(f"{call}: the label of {show(x[row])} should be {OPS[int(x[row, 1])]}(a, b){hint}",
                       expected=str(int(right[row])), got=str(int(y[row])))
    wanted = fraction * N_EXAMPLES
    if abs(len(train_x) - wanted) >= 1:
        raise Mismatch(f"{call}: the training set should hold train_fraction x 32768 = {wanted:.2f} examples, rounded",
                       expected=f"round({wanted:.2f}) = {round(wanted)} (floor and ceiling accepted too)",
                       got=f"{len(train_x)}")
    share = float((train_x[:, 1] == MAX_TOKEN).double().mean()) if len(train_x) else 0.0
    if not 0.45 <= share <= 0.55:
        raise Mismatch(f"{call}: the split should be random, so about half of the training examples are max "
                       "examples; shuffle all examples (torch.randperm) before cutting",
                       expected="a share of max examples near 0.5", got=f"{share:.3f}")
    return frozenset(codes(train_x).tolist())


# ---- the network -------------------------------------------------------------------------

CONFIGS = [(32, 4), (24, 2), (16, 1)]  # (d_model, num_heads)


def network_call(d_model: int, num_heads: int) -> str:
    return f"AttentionNetwork(vocab_size=131, d_model={d_model}, num_heads={num_heads})"


def build_network(student, device: str, d_model: int, num_heads: int):
    """The student's network with only the documented keyword arguments, in eval mode."""
    model = build_module(student, device, "AttentionNetwork", vocab_size=VOCAB_SIZE, d_model=d_model,
                         num_heads=num_heads)
    return model.eval()


def attention_pair(output, call: str):
    """(logits, weights) from forward(x, return_attention=True), or a ContractError (probe side)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise ContractError(f"{call} should return a pair (logits, weights)", expected="(logits, weights)",
                            got=describe(output))
    return output


class Shapes(Check):
    name = "shapes"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": random_examples(5, ctx.generator()), "configs": CONFIGS}

    @staticmethod
    def probe(student, inputs, device):
        def run(d_model, num_heads):
            model = build_network(student, device, d_model, num_heads)
            with torch.no_grad():
                logits = model(inputs["x"])
                pair = attention_pair(model(inputs["x"], return_attention=True),
                                      f"{network_call(d_model, num_heads)}.forward(x, return_attention=True)")
            return {"logits": logits, "pair": list(pair)}

        return [student.call(run, d_model, num_heads) for d_model, num_heads in inputs["configs"]]

    def verdict(self, ctx, inputs, got, expected):
        B = len(inputs["x"])
        problems = []
        for (d_model, num_heads), record in zip(inputs["configs"], got, strict=True):
            call = f"{network_call(d_model, num_heads)} in eval mode, x of shape ({B}, 4)"
            try:
                value = value_of(record, call)
                logits = require_tensor(value["logits"], f"{call}: forward(x)", shape=(B, NUM_VALUES))
                require_finite(logits, f"{call}: forward(x)")
                again, weights = value["pair"]
                again = require_tensor(again, f"{call}: the logits of forward(x, return_attention=True)",
                                       shape=(B, NUM_VALUES))
                require_tensor(weights, f"{call}: the weights of forward(x, return_attention=True)",
                               shape=(B, num_heads, 4, 4))
                if not torch.allclose(again.to(torch.float64), logits.to(torch.float64), atol=1e-5, rtol=1e-4):
                    raise Mismatch(f"{call}: forward(x, return_attention=True) should return the same logits as "
                                   "forward(x)", expected="the same logits",
                                   got=f"max abs difference {max_abs_error(again, logits):.3g}")
            except Mismatch as failure:
                problems.append(failure)
        right = len(inputs["configs"]) - len(problems)
        if not problems:
            return Verdict.ok(f"logits ({B}, 128) and weights ({B}, num_heads, 4, 4) for num_heads = 4, 2 and 1, "
                              "the same logits with and without return_attention")
        first = problems[0]
        return Verdict.partial(right, len(inputs["configs"]), f"{right} of {len(inputs['configs'])} sizes right; "
                               f"first problem: {first.message}", expected=first.expected, got=first.got)


class WeightsAreDistributions(Check):
    name = "weights_are_distributions"
    needs_reference = False
    CONFIGS = [(32, 4), (24, 2)]

    def inputs(self, ctx):
        return {"x": random_examples(16, ctx.generator()), "configs": self.CONFIGS}

    @staticmethod
    def probe(student, inputs, device):
        weights = []
        for d_model, num_heads in inputs["configs"]:
            model = build_network(student, device, d_model, num_heads)
            with torch.no_grad():
                call = f"{network_call(d_model, num_heads)}.forward(x, return_attention=True)"
                weights.append(attention_pair(model(inputs["x"], return_attention=True), call)[1])
        return weights

    def verdict(self, ctx, inputs, got, expected):
        B = len(inputs["x"])
        for (d_model, num_heads), weights in zip(inputs["configs"], got, strict=True):
            what = f"the weights of {network_call(d_model, num_heads)} (eval mode)"
            require_tensor(weights, what, shape=(B, num_heads, 4, 4))
            columns = weights.to(torch.float64).sum(-2)
            if (torch.isfinite(weights).all() and not torch.allclose(weights.to(torch.float64).sum(-1),
                                                                      torch.ones(()).to(torch.float64), atol=1e-5)
                    and torch.allclose(columns, torch.ones_like(columns), atol=1e-5)):
                raise Mismatch(f"{what}: the columns sum to 1, not the rows: the softmax is taken over the queries. "
                               "Take it over the keys, the last axis (softmax(scores, dim=-1)), so that each query's "
                               "weights form a distribution", expected="weights[b, h, q, :].sum() == 1",
                               got="weights[b, h, :, k].sum() == 1")
            require_distributions(weights, what, shape=(B, num_heads, 4, 4))
        return Verdict.ok(f"for {B} examples and 4 and 2 heads, every query's weights over the 4 keys are "
                          "non-negative and sum to 1")


# ---- train_model, on a grader-made model -------------------------------------------------

class TinyNetwork(nn.Module):
    """A grader-made model with AttentionNetwork's forward signature: each token's embedding
    (131 x 4), the four side by side, a linear layer to the 128 logits. It records every call
    made with gradients enabled (training): the batch, and the parameters at that moment."""

    def __init__(self, state: dict):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB_SIZE, 4)
        self.output = nn.Linear(16, NUM_VALUES)
        self.load_state_dict({key: value.detach().cpu() for key, value in state.items()})
        self.batches, self.snapshots = [], []

    def forward(self, x, return_attention=False):
        if torch.is_grad_enabled():
            self.batches.append(x.detach().cpu().clone())
            self.snapshots.append(self.flat())
        logits = self.output(self.embedding(x).flatten(1))
        if return_attention:
            B, T = x.shape
            return logits, torch.full((B, 1, T, T), 1 / T, device=x.device)
        return logits

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.parameters()]).cpu().clone()


def tiny_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"embedding.weight": torch.randn(VOCAB_SIZE, 4, generator=generator),
            "output.weight": 0.3 * torch.randn(NUM_VALUES, 16, generator=generator),
            "output.bias": 0.1 * torch.randn(NUM_VALUES, generator=generator)}


def tiny_from_flat(flat: torch.Tensor) -> TinyNetwork:
    """A TinyNetwork holding the parameters ``flat`` (as recorded by TinyNetwork.flat)."""
    model = TinyNetwork(tiny_state(torch.Generator().manual_seed(0)))
    torch.nn.utils.vector_to_parameters(flat.to(torch.float32), model.parameters())
    return model




def train_losses(history, epochs: int, call: str) -> list[float]:
    """history["train_loss"]: one finite float per epoch (grading side)."""
    if not isinstance(history, dict):
        raise Mismatch(f"{call} should return a dict {{'train_loss': [...]}}", expected="a dict",
                       got=describe(history))
    values = history.get("train_loss")
    if not isinstance(values, list) or len(values) != epochs:
        raise Mismatch(f"{call}: history['train_loss'] should be a list with one loss per epoch",
                       expected=f"a list of {epochs} floats",
                       got="no such key" if "train_loss" not in history else describe(values))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise Mismatch(f"{call}: history['train_loss'] should hold finite Python floats (use loss.item())",
                       expected="finite floats", got=", ".join(describe(v) for v in values)[:200])
    return [float(v) for v in values]


def mean_cross_entropy(flat: torch.Tensor, x: torch.Tensor) -> float:
    """The mean cross-entropy of the TinyNetwork with parameters ``flat`` on examples ``x``."""
    with torch.no_grad():
        return float(F.cross_entropy(tiny_from_flat(flat)(x).to(torch.float64), labels_of(x)))


def optimizer_step(state: dict, x: torch.Tensor, optimizer: str, **options) -> dict[str, torch.Tensor]:
    """The parameters after one step of ``optimizer`` ("AdamW", "Adam" or "SGD") on the mean
    cross-entropy of the TinyNetwork ``state`` on ``x`` (grading side, CPU, float32)."""
    model = TinyNetwork(state)
    kind = getattr(torch.optim, optimizer)
    step = kind(model.parameters(), **options)
    loss = F.cross_entropy(model.output(model.embedding(x).flatten(1)), labels_of(x))
    step.zero_grad()
    loss.backward()
    step.step()
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def gradients(state: dict, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The float64 gradient of the mean cross-entropy at ``state`` (grading side)."""
    model = TinyNetwork(state).double()
    loss = F.cross_entropy(model.output(model.embedding(x).flatten(1)), labels_of(x))
    loss.backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def step_allowance(gradient: torch.Tensor, lr: float, atol: float, eps: float = 1e-8) -> torch.Tensor:
    """How far each parameter may land from the grader's AdamW step. Adam's first step is
    lr * g / (|g| + eps): the same for a loss scaled by s (a sum instead of a mean, clipping)
    except where eps matters, by up to lr * eps / (min(s, 1) |g| + eps); allowed for s >= 0.01.
    Where |g| < 1e-6 its sign (so the step of +-lr) is float32 rounding noise: allowed too."""
    scaled = lr * eps / (0.01 * gradient.abs() + eps)
    return atol + torch.where(gradient.abs() < 1e-6, torch.full_like(scaled, 2.0 * lr), scaled)


def step_error(after: dict, wanted: dict, allowance: dict) -> float:
    """The largest |after - wanted| beyond each coordinate's allowance (<= 0: within it)."""
    return max(float(((after[name].to(torch.float64) - wanted[name].to(torch.float64)).abs()
                      - allowance[name]).max()) for name in wanted)


class TrainModelStep(Check):
    """train_model with epochs=1 and batch_size = the number of examples makes exactly one
    optimizer step on one batch, which the grading process recomputes with torch.optim.AdamW.
    Adam's first step does not depend on the betas, nor on the scale of the loss (nor on
    gradient clipping); it shows the learning rate, the decoupled weight decay and the
    direction of the gradient. The reported loss must be the mean cross-entropy."""

    name = "train_model_step"
    needs_reference = False
    SETTINGS = {"epochs": 1, "batch_size": 48, "lr": 0.01, "weight_decay": 0.5}

    def inputs(self, ctx):
        generator = ctx.generator()
        x = random_examples(self.SETTINGS["batch_size"], generator)
        return {"state": tiny_state(generator), "x": x, "y": labels_of(x), "settings": dict(self.SETTINGS)}

    @staticmethod
    def probe(student, inputs, device):
        model = TinyNetwork(inputs["state"]).to(device)
        history = student.train_model(model, inputs["x"], inputs["y"], **inputs["settings"])
        return {"history": plain_history(history), "after": {name: p.detach().cpu() for name, p in
                                                             model.named_parameters()},
                "batch_sizes": [len(batch) for batch in model.batches]}

    def verdict(self, ctx, inputs, got, expected):
        settings, state, x = inputs["settings"], inputs["state"], inputs["x"]
        call = (f"train_model(model, train_x ({len(x)} examples), train_y, epochs=1, batch_size={len(x)}, "
                f"lr={settings['lr']:g}, weight_decay={settings['weight_decay']:g})")
        losses = train_losses(got["history"], 1, call)
        sizes = got["batch_sizes"]
        if sizes != [len(x)]:
            raise Mismatch(f"{call} should call the model once with gradients enabled, on one batch of all "
                           f"{len(x)} examples (call it under torch.no_grad() for anything but training)",
                           expected=f"one batch of {len(x)}", got=f"batches of sizes {sizes}" if sizes else
                           "no call with gradients: the model was not trained")
        after = {name: require_tensor(got["after"].get(name), f"parameter {name} after training",
                                      shape=tuple(value.shape)) for name, value in state.items()}
        lr, decay = settings["lr"], settings["weight_decay"]
        allowance = {name: step_allowance(g, lr, ctx.threshold("step_atol")) for name, g in gradients(state, x).items()}
        wanted = optimizer_step(state, x, "AdamW", lr=lr, weight_decay=decay)
        error = step_error(after, wanted, allowance)
        if error > 0:
            candidates = {
                "AdamW with its default weight_decay=0.01 (pass weight_decay=weight_decay)":
                    optimizer_step(state, x, "AdamW", lr=lr),
                "Adam without weight decay": optimizer_step(state, x, "Adam", lr=lr),
                "Adam with an L2 penalty (torch.optim.Adam(..., weight_decay=...)), not AdamW's decoupled decay":
                    optimizer_step(state, x, "Adam", lr=lr, weight_decay=decay),
                "AdamW with its default lr=1e-3 (pass lr=lr)": optimizer_step(state, x, "AdamW", weight_decay=decay),
                "AdamW with lr=2e-3, train_model's default, instead of the lr passed in":
                    optimizer_step(state, x, "AdamW", lr=2e-3, weight_decay=decay),
                "plain SGD": optimizer_step(state, x, "SGD", lr=lr),
                "no step at all (the parameters did not change)": {k: v.clone() for k, v in state.items()},
            }
            like = next((what for what, params in candidates.items() if step_error(after, params, allowance) <= 0),
                        None)
            hint = (f"; what you did matches {like}" if like else
                    "; check the optimizer (torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)) "
                    "and the loss (F.cross_entropy(logits, y))")
            raise Mismatch(f"{call}: the parameters after the one step differ from one AdamW step on the mean "
                           f"cross-entropy{hint}", expected="one AdamW step (computed by the grader)",
                           got=f"max abs difference {error + ctx.threshold('step_atol'):.3g}")
        loss = mean_cross_entropy(torch.cat([p.reshape(-1) for p in state.values()]), x)
        if abs(losses[0] - loss) > ctx.threshold("loss_rtol") * loss:
            hint = (" (that is the sum over the batch: use the mean, F.cross_entropy's default)"
                    if abs(losses[0] - loss * len(x)) < 1e-3 * loss * len(x) else "")
            raise Mismatch(f"{call}: history['train_loss'][0] should be the batch's mean cross-entropy before the "
                           f"step{hint}", expected=f"{loss:.5f}", got=f"{losses[0]:.5f}")
        return Verdict.ok(f"one AdamW step with lr={lr:g} and weight_decay={decay:g} on the mean cross-entropy, "
                          f"as computed by the grader; train_loss [{losses[0]:.4f}]")


class TrainModelBatches(Check):
    """Two epochs over 64 examples in batches of 16, with the default lr and weight_decay: the
    grader's model records each training batch and its parameters at that moment."""

    name = "train_model_batches"
    needs_reference = False
    SETTINGS = {"epochs": 2, "batch_size": 16}
    COUNT = 64

    def inputs(self, ctx):
        generator = ctx.generator()
        x = random_examples(self.COUNT, generator)
        return {"state": tiny_state(generator), "x": x, "y": labels_of(x), "settings": dict(self.SETTINGS)}

    @staticmethod
    def probe(student, inputs, device):
        model = TinyNetwork(inputs["state"]).to(device)
        history = student.train_model(model, inputs["x"], inputs["y"], **inputs["settings"])
        return {"history": plain_history(history), "batches": model.batches, "snapshots": model.snapshots,
                "final": model.flat()}

    def verdict(self, ctx, inputs, got, expected):
        x, settings = inputs["x"], inputs["settings"]
        epochs, size = settings["epochs"], settings["batch_size"]
        per_epoch = len(x) // size
        call = f"train_model(model, train_x ({len(x)} examples), train_y, epochs={epochs}, batch_size={size})"
        losses = train_losses(got["history"], epochs, call)
        batches = [require_tensor(batch, f"batch {i} that {call} fed the model") for i, batch in
                   enumerate(got["batches"])]
        sizes = [len(batch) for batch in batches]
        if sizes != [size] * (epochs * per_epoch):
            raise Mismatch(f"{call} should feed the model {epochs} x {per_epoch} mini-batches of {size} with "
                           "gradients enabled (call it under torch.no_grad() for anything but training)",
                           expected=f"{epochs * per_epoch} batches of {size}",
                           got=f"{len(sizes)} batches, of sizes {sizes[:12]}{' ...' if len(sizes) > 12 else ''}")
        position = {int(code): index for index, code in enumerate(codes(x))}
        orders = []
        for epoch in range(epochs):
            seen = torch.cat(batches[epoch * per_epoch:(epoch + 1) * per_epoch])
            if seen.dim() != 2 or seen.shape[1] != 4 or not all(int(c) in position for c in codes(seen)):
                raise Mismatch(f"{call}: epoch {epoch + 1} fed the model rows that are not training examples",
                               expected="rows of train_x", got=f"rows such as {seen[0].tolist()}")
            order = [position[int(code)] for code in codes(seen)]
            if sorted(order) != list(range(len(x))):
                missing = len(x) - len(set(order))
                raise Mismatch(f"{call}: an epoch is one pass over every training example exactly once; epoch "
                               f"{epoch + 1} left out {missing} and repeated others (shuffle with a permutation, "
                               "torch.randperm, not with random draws)", expected=f"each of the {len(x)} once",
                               got=f"{len(set(order))} distinct examples")
            orders.append(order)
        if orders[0] == list(range(len(x))) or orders[1] == list(range(len(x))):
            raise Mismatch(f"{call}: the examples came in their original order; shuffle them at every epoch "
                           "(torch.randperm(len(train_x)))", expected="a random order", got="the original order")
        if orders[0] == orders[1]:
            raise Mismatch(f"{call}: both epochs used the same order; draw a new permutation at every epoch",
                           expected="a new random order each epoch", got="the same order twice")
        snapshots = [*got["snapshots"], got["final"]]
        still = [i + 1 for i in range(len(batches)) if torch.equal(snapshots[i], snapshots[i + 1])]
        if still:
            raise Mismatch(f"{call}: the parameters should change after every batch (zero_grad, backward and "
                           "optimizer.step() once per batch, inside the batch loop)",
                           expected="a step after each batch", got=f"no change after batch(es) {still}")
        wanted = [sum(mean_cross_entropy(snapshots[i], batches[i]) for i in range(e * per_epoch, (e + 1) * per_epoch))
                  / per_epoch for e in range(epochs)]
        for epoch, (loss, right) in enumerate(zip(losses, wanted, strict=True)):
            if abs(loss - right) > ctx.threshold("loss_rtol") * right:
                raise Mismatch(f"{call}: history['train_loss'][{epoch}] should be the mean of epoch {epoch + 1}'s "
                               "batch losses (each the batch's mean cross-entropy, before its step)",
                               expected=f"{right:.5f}", got=f"{loss:.5f}")
        return Verdict.ok(f"{epochs} epochs of {per_epoch} shuffled batches of {size}, every example once per epoch, "
                          f"a new order each epoch, one step per batch; train_loss "
                          f"[{', '.join(f'{v:.4f}' for v in losses)}]")


# ---- the figure --------------------------------------------------------------------------

class AttentionFigure(Check):
    """plot_attention for one max and one min example (4 and 2 heads) of the grader's making:
    every head's panel must plot that head's (4, 4) weights, query positions on the rows, key
    positions on the columns, the tokens under the columns and beside the rows."""

    name = "attention_figure"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for op, heads in ((MAX_TOKEN, 4), (MIN_TOKEN, 2)):
            a, b = torch.randperm(NUM_VALUES, generator=generator)[:2].tolist()  # two different numbers
            weights = torch.softmax(2 * torch.randn(heads, 4, 4, generator=generator), dim=-1)
            cases.append({"weights": weights, "tokens": [str(a), OPS[op], str(b), "SEP"]})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def draw(case):
            return figure_data(student.plot_attention(case["weights"].cpu(), list(case["tokens"])))

        return [student.call(draw, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        figures = [png for record in got if record.get("ok") for png in png_bytes(record["value"])]
        try:
            for case, record in zip(inputs["cases"], got, strict=True):
                weights, tokens = case["weights"], case["tokens"]
                call = f"plot_attention(weights of shape {tuple(weights.shape)}, {tokens})"
                panels = require_figure(value_of(record, call), call)
                square = [panel for panel in panels if tuple(panel["matrix"].shape) == (4, 4)]
                if len(square) < len(weights):
                    raise Mismatch(f"{call}: draw one heatmap panel per head", expected=f"{len(weights)} panels of 4 x 4",
                                   got=f"{len(square)}")
                for head in range(len(weights)):
                    what = f"{call}, head {head}"
                    if not any(_plots(panel, weights[head]) for panel in square) and any(
                            _plots(panel, weights[head].T) for panel in square):
                        raise Mismatch(f"{what}: the panel is the transpose of the head's weights; put the queries on "
                                       "the rows and the keys on the columns (imshow(weights[head]))",
                                       expected="weights[head]", got="weights[head].T")
                    require_heatmap(panels, weights[head], what, x_labels=tokens, y_labels=tokens)
        except Mismatch as failure:
            return Verdict.fail(failure.message, expected=failure.expected, got=failure.got, figures=figures)
        return Verdict.ok("for a max example (4 heads) and a min example (2 heads): one panel per head with that "
                          "head's weights, queries on the rows, keys on the columns, the tokens as tick labels",
                          figures=figures)


def _plots(panel: dict, weights: torch.Tensor) -> bool:
    """Whether a figure panel's matrix is ``weights``."""
    return torch.allclose(panel["matrix"].to(torch.float64), weights.to(torch.float64), atol=1e-6)
