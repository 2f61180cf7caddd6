"""Hidden and after-due-date checks of the `attention` assignment (grader only)."""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.verdict import Mismatch, require_finite, require_tensor

from .checks import ValuesFloat32, attention_pair, call_each, random_qkv


class ValuesFloat64(ValuesFloat32):
    name = "values_float64"
    dtype = torch.float64


class LargeInputs(Check):
    """Scores of order 1e6: a softmax without the max subtracted overflows to inf/NaN. Exact
    values are not compared, since near-ties at this scale depend on rounding order."""

    name = "large_inputs"
    needs_reference = False

    def inputs(self, ctx):
        case = random_qkv(ctx.generator(), (2,), 6, 8, 16, 4)
        scale = ctx.threshold("large_scale")
        case["Q"], case["K"] = case["Q"] * scale, case["K"] * scale
        return {"cases": [case]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        scale = ctx.threshold("large_scale")
        output, weights = attention_pair(got[0], f"inputs scaled by {scale:g}")
        require_tensor(weights, "weights", shape=(2, 6, 8))
        require_tensor(output, "output", shape=(2, 6, 4))
        require_finite(weights, f"weights for inputs scaled by {scale:g}")
        require_finite(output, f"output for inputs scaled by {scale:g}")
        sums = weights.to(torch.float64).sum(-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
            raise Mismatch("for large inputs the weights no longer sum to 1", expected="row sums of 1",
                           got=f"row sums from {sums.min().item():.3g} to {sums.max().item():.3g}")
        return Verdict.ok(f"inputs scaled by {scale:g} give finite, normalised weights")
