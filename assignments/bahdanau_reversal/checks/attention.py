"""The `attention_weights` check: BahdanauAttention's weights on a padded batch are
distributions with exact zeros on padding (mask True), its context is their weighted sum of the
encoder outputs (recomputed here in float64), every position counts without a mask, and the
weights follow the decoder state.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_finite,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import H, items

# ---- attention ---------------------------------------------------------------------------

ATTENTION_LENGTHS = [6, 4, 3, 1]  # real positions per row; the rest is padding


class AttentionWeights(Check):
    """BahdanauAttention(16) on a batch with padding (mask True = padding): the weights are
    distributions over S with exact zeros on padding; the context equals the weighted sum of
    the encoder outputs (computed here in float64 from the weights that came back); without a
    mask every position counts; another decoder state gives other weights."""

    name = "attention_weights"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        B, S = len(ATTENTION_LENGTHS), max(ATTENTION_LENGTHS)
        mask = torch.arange(S).unsqueeze(0) >= torch.tensor(ATTENTION_LENGTHS).unsqueeze(1)
        return {"decoder_hidden": torch.randn(B, H, generator=generator),
                "other_hidden": torch.randn(B, H, generator=generator),
                "encoder_outputs": torch.randn(B, S, H, generator=generator), "mask": mask}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            attention = build_module(student, device, "BahdanauAttention", H).eval()
            encoder_outputs, mask = inputs["encoder_outputs"], inputs["mask"]
            results = {}
            with torch.no_grad():
                for key, query, given in (("masked", inputs["decoder_hidden"], mask),
                                          ("unmasked", inputs["decoder_hidden"], None),
                                          ("other", inputs["other_hidden"], mask)):
                    context, weights = items(attention(query, encoder_outputs, given), 2, "BahdanauAttention.forward")
                    results[key] = {"context": context, "weights": weights}
            return results
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, "BahdanauAttention(16)")
        mask, encoder_outputs = inputs["mask"], inputs["encoder_outputs"]
        B, S, _ = encoder_outputs.shape
        atol = ctx.threshold("attention_atol")
        for key, call in (("masked", "forward(decoder_hidden, encoder_outputs, mask)"),
                          ("unmasked", "forward(decoder_hidden, encoder_outputs) without a mask"),
                          ("other", "forward(another decoder_hidden, encoder_outputs, mask)")):
            what = f"BahdanauAttention(16).{call}"
            weights = require_distributions(value[key]["weights"], f"the weights of {what}", shape=(B, S))
            context = require_tensor(value[key]["context"], f"the context of {what}", shape=(B, H))
            require_finite(context, f"the context of {what}")
            if key != "unmasked":
                self.require_masked(weights, mask, what)
            right = torch.einsum("bs,bsh->bh", weights.to(torch.float64), encoder_outputs.to(torch.float64))
            if not within_tolerance(context, right, atol, 0.0):
                raise Mismatch(f"{what}: the context should be the weighted sum of the encoder outputs with the weights "
                               "you return, sum_j weights[b, j] * encoder_outputs[b, j] (torch.bmm(weights.unsqueeze(1), "
                               "encoder_outputs).squeeze(1))", expected=f"max abs error <= {atol:g}",
                               got=f"max abs error {max_abs_error(context, right):.3g}")
        masked, other = value["masked"]["weights"], value["other"]["weights"]
        rows = [b for b, length in enumerate(ATTENTION_LENGTHS) if length > 1]
        change = max_abs_error(masked[rows], other[rows])
        if change <= ctx.threshold("query_min_change"):
            raise Mismatch("BahdanauAttention(16): two different decoder states give the same weights: the score "
                           "v^T tanh(W s + U h_j) must depend on the decoder state s as well as on each h_j",
                           expected="weights that change with decoder_hidden", got=f"max change {change:.3g}")
        padded = int(mask.sum())
        return Verdict.ok(f"weights {(B, S)} are distributions over S, exactly 0 on all {padded} padded positions; "
                          f"the context is their weighted sum of the encoder outputs (float64, within {atol:g}); "
                          "the weights follow the decoder state")

    @staticmethod
    def require_masked(weights: torch.Tensor, mask: torch.Tensor, what: str) -> None:
        on_padding = weights[mask]
        if (on_padding != 0).any():
            if (weights[~mask] == 0).any() and (weights[mask] > 0).all():
                hint = ("your weights are zero on real positions instead: mask is True where the source is padding "
                        "(scores.masked_fill(mask, float('-inf')))")
            else:
                hint = ("set the scores of padded positions to -inf before the softmax "
                        "(scores.masked_fill(mask, float('-inf'))); a mask applied after the softmax, or a finite "
                        "penalty, leaves weight there or breaks the sum to 1")
            b, j = (int(i) for i in (mask & (weights != 0)).nonzero()[0])
            raise Mismatch(f"{what}: the weights on padded positions (mask True) must be exactly 0: {hint}",
                           expected="weights[mask] == 0", got=f"weights[{b}, {j}] = {weights[b, j].item():.3g} "
                           f"(row {b} has {ATTENTION_LENGTHS[b]} real positions)")
