"""The training check of `char_rnn`: ``train_history`` (train_model trains the model it is given,
in place, and returns one finite train and val loss per epoch, the training loss falling on a
very repetitive text), with :func:`history_lists`, which the hidden ``trained_loss`` reuses.
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.corpus import split_ids
from autograder.toolkit.probe import build_module, plain_history
from autograder.toolkit.verdict import Mismatch

# ---- train_model -------------------------------------------------------------------------

HISTORY_TEXT = ("the cat sat on the mat. the dog sat on the log. the cat saw the dog and the dog saw "
                "the cat. ") * 24




def history_lists(history, epochs: int, call: str) -> dict[str, list[float]]:
    """The two loss lists of a train_model result, checked: a dict with train_loss and
    val_loss, one finite number per epoch (grading side)."""
    if not isinstance(history, dict):
        raise Mismatch(f"{call} should return a dict {{'train_loss': [...], 'val_loss': [...]}}",
                       expected="a dict", got=describe(history))
    lists = {}
    for key in ("train_loss", "val_loss"):
        values = history.get(key)
        if not isinstance(values, list) or len(values) != epochs:
            raise Mismatch(f"{call}: history[{key!r}] should be a list with one loss per epoch",
                           expected=f"a list of {epochs} floats",
                           got="no such key" if key not in history else describe(values))
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise Mismatch(f"{call}: history[{key!r}] should hold finite Python floats (use loss.item())",
                           expected="finite floats", got=", ".join(describe(v) for v in values)[:200])
        lists[key] = [float(v) for v in values]
    return lists


class TrainHistory(Check):
    name = "train_history"
    needs_reference = False
    SETTINGS = {"epochs": 3, "seq_len": 16, "batch_size": 8, "lr": 0.01}

    def inputs(self, ctx):
        train_ids, val_ids, vocab_size = split_ids(HISTORY_TEXT)
        return {"train_ids": train_ids, "val_ids": val_ids, "vocab_size": vocab_size, "settings": self.SETTINGS}

    @staticmethod
    def probe(student, inputs, device):
        model = build_module(student, device, "CharRNN", inputs["vocab_size"], 16, 32)
        before = [p.detach().clone() for p in model.parameters()]
        history = student.train_model(model, inputs["train_ids"], inputs["val_ids"], **inputs["settings"], clip=1.0)
        changed = any(not torch.equal(old, new.detach()) for old, new in zip(before, model.parameters(), strict=True))
        return {"history": plain_history(history), "changed": changed}

    def verdict(self, ctx, inputs, got, expected):
        settings = inputs["settings"]
        call = ("train_model(CharRNN(V, 16, 32), train_ids, val_ids, "
                + ", ".join(f"{key}={value}" for key, value in settings.items()) + ", clip=1.0)")
        lists = history_lists(got["history"], settings["epochs"], call)
        if not got["changed"]:
            raise Mismatch(f"{call} left the model's parameters unchanged; train the model you are given, in place",
                           expected="updated parameters", got="the same parameters as before")
        train = lists["train_loss"]
        if not train[-1] < train[0]:
            raise Mismatch(f"{call}: the training loss should fall over 3 epochs on a very repetitive text",
                           expected="train_loss[-1] < train_loss[0]", got=f"train_loss {train}")
        shown = {key: ", ".join(f"{v:.3f}" for v in values) for key, values in lists.items()}
        return Verdict.ok(f"the model was trained in place; train_loss [{shown['train_loss']}], "
                          f"val_loss [{shown['val_loss']}]")
