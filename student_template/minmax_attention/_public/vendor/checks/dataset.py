"""The dataset check of `minmax_attention`: ``dataset`` (make_dataset lists all 32768 examples
exactly once with their labels, split at random by the seed and train_fraction it is given).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import Mismatch, require_tensor, unpack, value_of

from .task import (
    MAX_TOKEN,
    MIN_TOKEN,
    N_EXAMPLES,
    NUM_VALUES,
    OPS,
    SEP_TOKEN,
    codes,
    labels_of,
    show,
)

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
