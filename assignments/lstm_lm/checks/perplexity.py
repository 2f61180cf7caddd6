"""Checks of `perplexity`.

``perplexity`` runs the student's function on Markov chains drawn from a grader-made model with
known log-probabilities, whose exact perplexity exp(mean NLL) the grader computes, and names
the common slip (log base 2, no exp, the sign flipped, a sum instead of a mean) when it is off.
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.sampling import random_table, temperature_probs
from autograder.toolkit.verdict import Mismatch, value_of

from .common import known_model


def chain(table: torch.Tensor, length: int, generator) -> torch.Tensor:
    """(length,) ids: a Markov chain drawn from the known model's own distribution."""
    probs = temperature_probs(table, 1.0)
    ids = [int(torch.randint(0, table.shape[0], (1,), generator=generator))]
    for _ in range(length - 1):
        ids.append(int(torch.multinomial(probs[ids[-1]], 1, generator=generator)))
    return torch.tensor(ids)


def known_perplexity(table: torch.Tensor, ids: torch.Tensor) -> float:
    """exp(mean -ln p(ids[t+1] | ids[t])) under the known model, float64."""
    log_probs = torch.log_softmax(table.to(torch.float64), dim=-1)
    return math.exp(-log_probs[ids[:-1], ids[1:]].mean().item())


PERPLEXITY_MISTAKES = {  # what the student computed, from the right perplexity p
    "log base 2 for the negative log-likelihood, then exp": lambda p: p ** (1 / math.log(2)),
    "2 ** (mean natural-log NLL)": lambda p: p ** math.log(2),
    "the mean negative log-likelihood, without exp": math.log,
    "exp of the mean log-likelihood (the sign flipped)": lambda p: 1 / p,
}


class Perplexity(Check):
    """perplexity(model, ids, seq_len) on a model with known log-probabilities: the grader
    knows exp(mean NLL) exactly; other sensible chunkings are accepted within a relative
    tolerance."""

    name = "perplexity"
    needs_reference = False
    CASES = [(401, 25), (300, 40), (120, 200)]  # (len(ids), seq_len)

    def inputs(self, ctx):
        generator = ctx.generator()
        table = random_table(9, generator, spread=2.0)
        return {"table": table, "cases": [{"ids": chain(table, n, generator), "seq_len": seq_len}
                                          for n, seq_len in self.CASES]}

    @staticmethod
    def probe(student, inputs, device):
        model = known_model(inputs["table"])
        return [student.attempt("perplexity", model, case["ids"].clone(), case["seq_len"]) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rtol = ctx.threshold("perplexity_rtol")
        shown = []
        for case, record in zip(inputs["cases"], got, strict=True):
            ids, seq_len = case["ids"], case["seq_len"]
            call = f"perplexity(model, ids of length {len(ids)}, seq_len={seq_len})"
            value = value_of(record, call)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise Mismatch(f"{call} should return a finite float", expected="a float", got=describe(value))
            right = known_perplexity(inputs["table"], ids)
            if abs(value - right) > rtol * right:
                hint = next((f"; your value is what {what} gives" for what, wrong in PERPLEXITY_MISTAKES.items()
                             if abs(value - wrong(right)) <= rtol * abs(wrong(right))), "")
                if not hint and value > right ** 5:
                    hint = "; did you sum the negative log-likelihoods instead of averaging them?"
                raise Mismatch(f"{call} on a model with known log-probabilities is off by more than {rtol:.0%}: "
                               "perplexity is exp of the mean negative log-likelihood (natural log) of each next "
                               f"id{hint}", expected=f"{right:.4f} (within {rtol:.0%})", got=f"{value:.4f}")
            shown.append(f"{value:.3f} (exactly {right:.3f})")
        return Verdict.ok(f"{len(shown)} sequences: {', '.join(shown)}, within {rtol:.0%}")
