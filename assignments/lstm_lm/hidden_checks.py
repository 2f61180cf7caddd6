"""Hidden checks of the `lstm_lm` assignment (grader only).

One trained check per language model. The grading process reads the corpus (``data/``, which
ships only with the grader), builds the character vocabulary from the whole text, and cuts it:
the first 90% for training, the last 10% held out. The probe builds the student's model with
the sizes in ``[budgets]`` and trains it with the grader's own loop (Adam, NLL of the returned
log-probabilities, gradient clipping at 1.0, seeded shuffling, fixed epochs; every window is
independent, state None), then returns the log-probabilities of every held-out window. The
perplexity is computed here, against the held-out targets the grading process cut itself.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import torch

from autograder.toolkit.check import Check, Verdict, derive_seed
from autograder.toolkit.corpus import next_char_windows, ngram_losses, split_ids
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import Mismatch, require_finite, require_tensor

from .checks import ATTENTION, LSTM, SCRATCH, require_log_probs

CORPUS = "moby_dick.txt"
TRAIN_FRACTION = 0.9
BEFORE_WINDOWS = 64  # held-out windows scored before training too (for the message)


@cache
def split(folder: Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(train ids, held-out ids, V) of the corpus (read once per process)."""
    return split_ids((folder / "data" / CORPUS).read_text(encoding="utf-8"), TRAIN_FRACTION)


def nll(log_probs: torch.Tensor, targets: torch.Tensor) -> float:
    return -log_probs.to(torch.float64).gather(-1, targets.unsqueeze(-1)).mean().item()


class TrainedPerplexity(Check):
    """Base of the three trained checks; ``model`` is the class the student wrote and ``key``
    the prefix of its entries in [budgets] and [thresholds]."""

    needs_reference = False
    model: str
    key: str

    def inputs(self, ctx):
        train, held, vocab_size = split(ctx.spec.folder)
        seq_len = ctx.budget(f"{self.key}_seq_len")
        train_x, train_y = next_char_windows(train, seq_len)
        return {"model": self.model, "train_x": train_x, "train_y": train_y, "held_x": next_char_windows(held, seq_len)[0],
                "sizes": [vocab_size, ctx.budget(f"{self.key}_embed_dim"), ctx.budget(f"{self.key}_hidden_dim")],
                "epochs": ctx.budget(f"{self.key}_epochs"), "batch_size": ctx.budget("batch_size"),
                "lr": ctx.budget("lr"), "shuffle_seed": derive_seed(ctx.seed, self.name, "shuffle")}

    @staticmethod
    def probe(student, inputs, device):
        """The grader's training loop: the same work for every submission. Returns the held-out
        log-probabilities after training (and of the first windows before), and the epoch losses."""
        vocab_size = inputs["sizes"][0]
        model = build_module(student, device, inputs["model"], *inputs["sizes"])
        held = inputs["held_x"]

        def held_log_probs(x):
            model.eval()
            with torch.no_grad():
                parts = [model(x[start:start + 256]) for start in range(0, len(x), 256)]
            model.train()
            if not all(isinstance(part, (tuple, list)) and isinstance(part[0], torch.Tensor) for part in parts):
                return None
            return torch.cat([part[0] for part in parts]).float()

        before = held_log_probs(held[:BEFORE_WINDOWS])
        if before is None or tuple(before.shape) != (min(len(held), BEFORE_WINDOWS), held.shape[1], vocab_size):
            return {"problem": f"{inputs['model']}.forward(x (B, T)) should return (log_probs (B, T, V), ...); got "
                               + ("something else" if before is None else f"log_probs of shape {tuple(before.shape)}")}
        optimizer = torch.optim.Adam(model.parameters(), lr=inputs["lr"])
        shuffle = torch.Generator().manual_seed(inputs["shuffle_seed"])
        X, Y, batch_size, losses, first = inputs["train_x"], inputs["train_y"], inputs["batch_size"], [], None
        for _ in range(inputs["epochs"]):
            order, total = torch.randperm(len(X), generator=shuffle), 0.0
            for start in range(0, len(X), batch_size):
                batch = order[start:start + batch_size]
                log_probs = model(X[batch])[0]
                loss = torch.nn.functional.nll_loss(log_probs.reshape(-1, vocab_size), Y[batch].reshape(-1))
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                total += loss.item() * len(batch)
                first = loss.item() if first is None else first
            losses.append(total / len(X))
        return {"before": before, "after": held_log_probs(held), "first_loss": first, "losses": losses}

    def targets(self, ctx, inputs) -> torch.Tensor:
        """The held-out targets, cut here from the corpus (not taken from what the worker saw)."""
        return next_char_windows(split(ctx.spec.folder)[1], inputs["held_x"].shape[1])[1]

    def metrics(self, ctx, inputs, got) -> dict[str, float]:
        """Held-out perplexity before (first windows) and after the grader's training."""
        if not isinstance(got, dict) or "problem" in got:
            raise Mismatch(got.get("problem", "unexpected probe result") if isinstance(got, dict) else "no result")
        targets, vocab_size = self.targets(ctx, inputs), inputs["sizes"][0]
        values = {}
        for name, rows in (("before", BEFORE_WINDOWS), ("after", len(targets))):
            what = f"held-out log_probs of {self.model} {name} training"
            log_probs = require_tensor(got[name], what, shape=(*targets[:rows].shape, vocab_size))
            require_finite(log_probs, what)
            require_log_probs(log_probs, what, ctx.threshold("normalised_atol"))
            values[f"perplexity {name}"] = math.exp(nll(log_probs, targets[:rows]))
        return values

    def baselines(self, ctx, inputs) -> dict[str, float]:
        """Held-out perplexity of guessing uniformly and of models that know only character
        frequencies (unigram) or only the previous character (bigram), counted on the training text."""
        train, _, vocab_size = split(ctx.spec.folder)
        losses = ngram_losses(train, inputs["held_x"], self.targets(ctx, inputs), vocab_size)
        return {"uniform": float(vocab_size), **{name: math.exp(loss) for name, loss in losses.items()}}

    def verdict(self, ctx, inputs, got, expected):
        values = self.metrics(ctx, inputs, got)
        threshold = ctx.threshold(f"{self.key}_max_perplexity")
        unigram = self.baselines(ctx, inputs)["unigram (character frequencies)"]
        losses, first = got["losses"], got["first_loss"]
        vocab_size, embed_dim, hidden_dim = inputs["sizes"]
        held, seq_len = inputs["held_x"].shape
        schedule = (f"{self.model}({vocab_size}, {embed_dim}, {hidden_dim}), {inputs['epochs']} epoch(s) over "
                    f"{len(inputs['train_x'])} windows of {seq_len} characters, batches of {inputs['batch_size']}, "
                    f"Adam lr {inputs['lr']:g}, clipping 1.0")
        trend = (f"training loss {first:.2f} on the first batch, {', '.join(f'{loss:.2f}' for loss in losses)} "
                 "per epoch" if losses else "no epochs")
        text = (f"held-out perplexity {values['perplexity after']:.2f} over {held} windows after the grader's "
                f"schedule ({schedule}; {trend}; {values['perplexity before']:.1f} before training)")
        if values["perplexity after"] > threshold:
            return Verdict.fail(f"{text}, above the threshold of {threshold:g}; a model that knows only character "
                                f"frequencies scores {unigram:.1f}. Check that forward returns log_softmax over the "
                                "vocabulary at every position, that the state is carried from step to step, and that "
                                "gradients reach every parameter", expected=f"<= {threshold:g}",
                                got=f"{values['perplexity after']:.2f}")
        return Verdict.ok(f"{text}; threshold {threshold:g}")


class TrainedLstm(TrainedPerplexity):
    name, model, key = "trained_lstm", LSTM, "lstm"


class TrainedScratch(TrainedPerplexity):
    name, model, key = "trained_scratch", SCRATCH, "scratch"


class TrainedAttention(TrainedPerplexity):
    name, model, key = "trained_attention", ATTENTION, "attention"
