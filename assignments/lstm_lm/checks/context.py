"""Checks that the language models use the past and only the past.

``scratch_uses_context`` checks that changing one token of the scratch model's input changes
the log-probabilities after it and none before it; ``attention_causal`` checks that the
attention weights are distributions with zeros after the diagonal and that changing later tokens
changes neither the log-probabilities nor the weights of earlier positions.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_tensor,
    unpack,
    within_tolerance,
)

from .common import ATTENTION, EMBED, HIDDEN, SCRATCH, VOCAB, run_model, tokens


class ScratchUsesContext(Check):
    """Changing token k changes the log-probabilities after it and none before it."""

    name = "scratch_uses_context"
    needs_reference = False
    CHANGED = 2

    def inputs(self, ctx):
        x = tokens(ctx.generator(), 2, 8)
        changed = x.clone()
        changed[:, self.CHANGED] = (x[:, self.CHANGED] + 1) % VOCAB
        return {"x": x, "changed": changed}

    @staticmethod
    def probe(student, inputs, device):
        case = f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})"
        outputs = run_model(student, device, case, (inputs["x"],), (inputs["changed"],))
        return [output[0] for output in outputs]

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        k, label = self.CHANGED, f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})"
        plain, changed = (require_tensor(value, f"log_probs of {label}", shape=(B, T, VOCAB)) for value in got)
        difference = (plain.to(torch.float64) - changed.to(torch.float64)).abs().amax(dim=(0, 2))  # per position
        shown = ", ".join(f"{d:.2g}" for d in difference.tolist())
        if difference[:k].max() > ctx.threshold("state_atol"):
            raise Mismatch(f"{label}: changing token {k} changed the log_probs of earlier positions: position t must "
                           "depend only on tokens 0..t", expected=f"no change before position {k}",
                           got=f"changes per position {shown}")
        if difference[k + 1] <= ctx.threshold("context_min_change"):
            raise Mismatch(f"{label}: changing token {k} leaves the log_probs of position {k + 1} unchanged (token "
                           f"{k + 1} is the same), so the model does not use its context: carry (h, c) from each step "
                           "to the next instead of starting every step from zeros",
                           expected=f"a change at position {k + 1}", got=f"changes per position {shown}")
        return Verdict.ok(f"changing token {k} changes the log_probs after it ({difference[k + 1].item():.2g} at "
                          f"position {k + 1}) and none before it")


class AttentionCausal(Check):
    """Weights (B, T, T) are distributions with zeros after the diagonal, and changing the
    tokens after position t changes neither log_probs[:, :t+1] nor weights[:, :t+1]."""

    name = "attention_causal"
    needs_reference = False
    CUTS = (0, 3, 6)

    def inputs(self, ctx):
        generator = ctx.generator()
        x = tokens(generator, 2, 9)
        variants = []
        for t in self.CUTS:
            changed = x.clone()
            changed[:, t + 1:] = (x[:, t + 1:] + torch.randint(1, VOCAB, x[:, t + 1:].shape, generator=generator)) % VOCAB
            variants.append(changed)
        return {"x": x, "variants": variants}

    @staticmethod
    def probe(student, inputs, device):
        case = f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})"
        return run_model(student, device, case, (inputs["x"],), *((v,) for v in inputs["variants"]))

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        label = f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})"
        atol = ctx.threshold("state_atol")
        outputs = []
        for log_probs, weights in (unpack(value, 2, f"{label}.forward") for value in got):
            require_tensor(log_probs, f"log_probs of {label}", shape=(B, T, VOCAB))
            require_distributions(weights, f"attention weights of {label}", shape=(B, T, T))
            outputs.append((log_probs, weights))
        log_probs, weights = outputs[0]
        future = weights.to(torch.float64).triu(diagonal=1)
        if future.abs().max() > atol:
            b, row, col = (int(i) for i in (future.abs() == future.abs().max()).nonzero()[0])
            raise Mismatch(f"{label}: step {row} attends to position {col}, which comes after it: mask the scores of "
                           "positions j > t with -inf before the softmax (row t of the weights must be zero after "
                           "column t)", expected="weights[:, t, j] = 0 for j > t",
                           got=f"weights[{b}, {row}, {col}] = {weights[b, row, col].item():.3g}")
        for t, (changed_log_probs, changed_weights) in zip(self.CUTS, outputs[1:], strict=True):
            for what, mine, theirs in (("log_probs", changed_log_probs, log_probs),
                                       ("weights", changed_weights, weights)):
                if not within_tolerance(mine[:, :t + 1], theirs[:, :t + 1], atol, 0.0):
                    raise Mismatch(f"{label}: changing the tokens after position {t} changed {what}[:, :{t + 1}]: the "
                                   f"output at step t may only depend on tokens 0..t (does the encoder or the "
                                   "decoder read ahead?)", expected=f"the same {what}[:, :{t + 1}]",
                                   got=f"max abs difference {max_abs_error(mine[:, :t + 1], theirs[:, :t + 1]):.3g}")
        return Verdict.ok(f"weights {(B, T, T)} are distributions with zeros after the diagonal, and changing the "
                          f"tokens after positions {', '.join(map(str, self.CUTS))} changes nothing up to them")
