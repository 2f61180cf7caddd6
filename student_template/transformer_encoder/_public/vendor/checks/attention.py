"""Checks of `MultiHeadSelfAttention`, and the rule against built-in attention.

``mha_shapes`` checks the output and weight shapes for several configurations;
``mha_matches_pytorch`` loads the grader's weights into the student's q/k/v/out projections
and compares with ``torch.nn.MultiheadAttention``, which the verdict runs itself in float64
(with hints for the common mistakes); ``padding_mask`` checks that padded keys get weight
exactly 0 and that a sentence gives the same result alone as in a padded batch;
``from_scratch`` forbids the built-in attention and Transformer layers.
"""

from __future__ import annotations

import math

import torch

from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_close,
    require_finite,
    require_tensor,
    unpack,
    value_of,
    within_tolerance,
)

from .common import MHA, load_mha_weights, mha_weights, padding_mask, randn, shape_text


class MhaShapes(Check):
    name = "mha_shapes"
    needs_reference = False
    CONFIGS = {  # label: (B, L, d_model, num_heads, lengths or None)
        "B=2, L=5, d_model=16, 4 heads": (2, 5, 16, 4, None),
        "B=3, L=7, d_model=24, 3 heads, padding": (3, 7, 24, 3, [7, 4, 2]),
        "B=1, L=1, d_model=8, 1 head": (1, 1, 8, 1, None),
        "B=2, L=6, d_model=32, 8 heads, padding": (2, 6, 32, 8, [3, 6]),
    }

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, (batch, length, d_model, heads, lengths) in self.CONFIGS.items():
            mask = padding_mask(lengths, length) if lengths else None
            cases.append({"label": label, "x": randn(generator, batch, length, d_model), "num_heads": heads,
                          "mask": mask})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            x = case["x"]
            with torch.no_grad():
                return build_module(student, device, MHA, x.shape[-1], case["num_heads"])(x, case["mask"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        problems = []
        for case, record in zip(inputs["cases"], got, strict=True):
            batch, length, d_model, heads, _ = self.CONFIGS[case["label"]]
            label = f"{MHA}({d_model}, {heads}) on x {(batch, length, d_model)}"
            try:
                out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
                require_tensor(out, f"out of {label}", shape=(batch, length, d_model))
                require_tensor(weights, f"weights of {label}", shape=(batch, heads, length, length))
            except Mismatch as failure:
                problems.append(failure)
        total, right = len(inputs["cases"]), len(inputs["cases"]) - len(problems)
        if not problems:
            return Verdict.ok(f"all {total} configurations give out (B, L, d_model) and weights (B, num_heads, L, L)")
        first = problems[0]
        return Verdict.partial(right, total, f"{right} of {total} configurations right; first problem: "
                               f"{first.message}", expected=first.expected, got=first.got)


def pytorch_mha(weights: dict, x: torch.Tensor, mask, num_heads: int):
    """The oracle, in the grading process: torch.nn.MultiheadAttention (float64) with the
    grader's weights. Returns (out, per-head weights, head-averaged weights)."""
    d_model = x.shape[-1]
    with torch.random.fork_rng(devices=[]):  # its own init must not move the grader's RNG
        oracle = torch.nn.MultiheadAttention(d_model, num_heads, dropout=0.0, batch_first=True,
                                             dtype=torch.float64)
    oracle.eval()
    with torch.no_grad():
        oracle.in_proj_weight.copy_(weights["in_proj_weight"])
        oracle.in_proj_bias.copy_(weights["in_proj_bias"])
        oracle.out_proj.weight.copy_(weights["out_proj_weight"])
        oracle.out_proj.bias.copy_(weights["out_proj_bias"])
        x64 = x.to(torch.float64)
        out, per_head = oracle(x64, x64, x64, key_padding_mask=mask, need_weights=True, average_attn_weights=False)
        _, averaged = oracle(x64, x64, x64, key_padding_mask=mask, need_weights=True, average_attn_weights=True)
    return out, per_head, averaged


MHA_MISTAKES = ("scores divided by sqrt(d_model) instead of sqrt(d_head)", "scores not scaled at all",
                "heads split with view(B, num_heads, L, d_head) (no transpose)", "the padding mask ignored",
                "the softmax over the queries instead of the keys")


def mistaken_weights(weights: dict, x: torch.Tensor, mask, num_heads: int, mistake: str) -> torch.Tensor:
    """Per-head attention weights (float64) as a common mistake computes them (for hints)."""
    x = x.to(torch.float64)
    batch, length, d_model = x.shape
    d_head = d_model // num_heads
    w, b = weights["in_proj_weight"].to(torch.float64), weights["in_proj_bias"].to(torch.float64)

    def heads(index):
        projected = x @ w[index * d_model:(index + 1) * d_model].T + b[index * d_model:(index + 1) * d_model]
        if mistake.startswith("heads split"):
            return projected.reshape(batch, num_heads, length, d_head)
        return projected.view(batch, length, num_heads, d_head).transpose(1, 2)

    scale = {"scores divided by sqrt(d_model) instead of sqrt(d_head)": math.sqrt(d_model),
             "scores not scaled at all": 1.0}.get(mistake, math.sqrt(d_head))
    scores = heads(0) @ heads(1).transpose(-2, -1) / scale
    if mask is not None and mistake != "the padding mask ignored":
        scores = scores.masked_fill(mask[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-2 if mistake.startswith("the softmax over the queries") else -1)


class MhaMatchesPytorch(Check):
    """The student's module with the grader's weights copied in, against the oracle that the
    verdict computes itself (nothing of the oracle runs in the student's process)."""

    name = "mha_matches_pytorch"
    needs_reference = False
    CONFIGS = [  # (label, B, L, d_model, num_heads, lengths or None)
        ("d_model=16, 4 heads, no padding", 2, 5, 16, 4, None),
        ("d_model=16, 4 heads, key_padding_mask", 3, 6, 16, 4, [6, 4, 2]),
        ("d_model=24, 3 heads, key_padding_mask", 2, 7, 24, 3, [5, 7]),
    ]

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, batch, length, d_model, heads, lengths in self.CONFIGS:
            cases.append({"label": label, "num_heads": heads, "weights": mha_weights(generator, d_model),
                          "x": randn(generator, batch, length, d_model),
                          "mask": padding_mask(lengths, length) if lengths else None})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            x = case["x"]
            module = build_module(student, device, MHA, x.shape[-1], case["num_heads"])
            load_mha_weights(module, case["weights"], x.shape[-1])
            module.eval()
            with torch.no_grad():
                return module(x, key_padding_mask=case["mask"])
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        worst = {"out": 0.0, "per-head weights": 0.0, "head-averaged weights": 0.0}
        for case, record in zip(inputs["cases"], got, strict=True):
            x, heads = case["x"], case["num_heads"]
            batch, length, d_model = x.shape
            label = f"{MHA}({d_model}, {heads}) with the grader's weights, x {shape_text(x)}, {case['label']}"
            out, weights = unpack(value_of(record, label), 2, f"{label}: forward")
            require_tensor(out, f"out ({label})", shape=(batch, length, d_model))
            require_tensor(weights, f"weights ({label})", shape=(batch, heads, length, length))
            require_finite(out, f"out ({label})")
            require_finite(weights, f"weights ({label})")
            right_out, right_weights, right_average = pytorch_mha(case["weights"], x, case["mask"], heads)
            pairs = {"out": (out, right_out), "per-head weights": (weights, right_weights),
                     "head-averaged weights": (weights.mean(dim=1), right_average)}
            errors = {what: max_abs_error(mine, right) for what, (mine, right) in pairs.items()}
            good = {what: within_tolerance(mine, right, atol, rtol) for what, (mine, right) in pairs.items()}
            report = ", ".join(f"{what} {error:.3g}" for what, error in errors.items())
            if not all(good.values()):
                raise Mismatch(f"{label}: differs from torch.nn.MultiheadAttention(batch_first=True) loaded with "
                               f"the same weights: max abs error {report} (tolerance {atol:g} + "
                               f"{rtol:g}·|expected|){self.hint(case, weights, good)}",
                               expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                               got=f"max abs error {report}")
            worst = {what: max(worst[what], errors[what]) for what in worst}
        return Verdict.ok(f"{len(inputs['cases'])} cases (d_model 16 and 24, with and without padding) match "
                          f"torch.nn.MultiheadAttention: max abs error "
                          + ", ".join(f"{what} {error:.2g}" for what, error in worst.items()))

    @staticmethod
    def hint(case: dict, weights: torch.Tensor, good: dict) -> str:
        if good["per-head weights"]:
            return ("; the weights are right, so look after the softmax: weights @ v, merging the heads with "
                    "transpose(1, 2).reshape(B, L, d_model), then out_proj")
        for mistake in MHA_MISTAKES:
            if mistake == "the padding mask ignored" and case["mask"] is None:
                continue
            if within_tolerance(weights, mistaken_weights(case["weights"], case["x"], case["mask"], case["num_heads"],
                                               mistake), 1e-4, 1e-3):
                return f"; your weights are what you get with {mistake}"
        if good["head-averaged weights"]:
            return ("; the average over the heads is right but the heads are not: split with "
                    "view(B, L, num_heads, d_head).transpose(1, 2)")
        return ("; check that q_proj/k_proj/v_proj make the queries/keys/values, the head split "
                "view(B, L, num_heads, d_head).transpose(1, 2), and the 1/sqrt(d_head) scaling")


class PaddingMask(Check):
    name = "padding_mask"
    needs_reference = False
    LENGTHS = [6, 3, 1]

    def inputs(self, ctx):
        generator = ctx.generator()
        x = randn(generator, 3, 6, 16)
        mask = padding_mask(self.LENGTHS, 6)
        noise = 1e3 * randn(ctx.generator("noise"), 3, 6, 16)
        return {"x": x, "mask": mask, "num_heads": 2, "lengths": self.LENGTHS,
                "disturbed": torch.where(mask[..., None], noise, x)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            x, mask = inputs["x"], inputs["mask"]
            module = build_module(student, device, MHA, x.shape[-1], inputs["num_heads"]).eval()
            with torch.no_grad():
                return {"padded": module(x, key_padding_mask=mask),
                        "disturbed": module(inputs["disturbed"], key_padding_mask=mask),
                        "alone": [module(x[b:b + 1, :n]) for b, n in enumerate(inputs["lengths"])]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        x, mask, heads = inputs["x"], inputs["mask"], inputs["num_heads"]
        label = f"{MHA}(16, {heads}) on x {shape_text(x)} with sentence lengths {inputs['lengths']}"
        value = value_of(got, label)
        out, weights = unpack(value["padded"], 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=tuple(x.shape))
        require_tensor(weights, f"weights ({label})", shape=(3, heads, 6, 6))
        require_finite(weights, f"weights ({label}), padded query rows included")
        require_finite(out, f"out ({label}), padded query rows included")
        leaked = weights.masked_select(mask[:, None, None, :].expand_as(weights))
        if (leaked != 0).any():
            raise Mismatch(f"{label}: padded keys get non-zero weight; every weight on a key where "
                           "key_padding_mask is True must be exactly 0 (masked_fill the scores before the "
                           "softmax; True means padding)", expected="0 on every padded key",
                           got=f"{int((leaked != 0).sum())} of {leaked.numel()} non-zero, largest "
                               f"{leaked.abs().max().item():.3g}")
        disturbed, _ = unpack(value["disturbed"], 2, f"{label}: forward")
        require_tensor(disturbed, f"out ({label}, padded positions replaced)", shape=tuple(x.shape))
        real = ~mask
        change = max_abs_error(disturbed[real], out[real])
        if not change <= atol:
            raise Mismatch(f"{label}: replacing the padded positions of x by large numbers changed the outputs "
                           "of the real tokens; nothing behind the padding may reach them",
                           expected="the same outputs at real tokens", got=f"changed by up to {change:.3g}")
        for b, n in enumerate(inputs["lengths"]):
            alone_out, alone_weights = unpack(value["alone"][b], 2, f"{label}: forward")
            what = f"sentence {b} (length {n}) in the padded batch vs alone without padding"
            require_tensor(alone_out, f"out of {MHA} on x[{b}:{b + 1}, :{n}]", shape=(1, n, x.shape[-1]))
            require_tensor(alone_weights, f"weights of {MHA} on x[{b}:{b + 1}, :{n}]", shape=(1, heads, n, n))
            try:
                require_close(out[b, :n], alone_out[0], f"out of {what}", atol=atol, rtol=rtol)
                require_close(weights[b, :, :n, :n], alone_weights[0], f"weights of {what}", atol=atol, rtol=rtol)
            except Mismatch as failure:
                raise Mismatch(f"{failure.message}. A sentence's results must not depend on the padding after it: "
                               "mask the padded keys, and split the heads with view(B, L, num_heads, d_head)"
                               ".transpose(1, 2) so that no head mixes positions", expected=failure.expected,
                               got=failure.got) from None
        return Verdict.ok("padded keys get weight exactly 0, no NaN in padded rows, values behind the padding "
                          "do not matter, and each sentence gives the same result alone as in the padded batch")


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"
