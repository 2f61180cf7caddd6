"""Visible checks of the `attention` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader, compares with the reference run through the same probe).
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.probe import numerical_jacobian
from autograder.toolkit.verdict import (
    Mismatch,
    located,
    max_abs_error,
    require_close,
    require_distributions,
    require_finite,
    require_tensor,
    unpack,
)

SDPA = "scaled_dot_product_attention"
CALL = "scaled_dot_product_attention(Q, K, V, mask)"


def random_qkv(generator, lead, lq, lk, dk, dv, dtype=torch.float32) -> dict:
    """Q (*lead, lq, dk), K (*lead, lk, dk), V (*lead, lk, dv) drawn from N(0, 1)."""
    def draw(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)
    return {"Q": draw(*lead, lq, dk), "K": draw(*lead, lk, dk), "V": draw(*lead, lk, dv)}


def shapes_of(case: dict) -> str:
    return ", ".join(f"{key} {tuple(case[key].shape)}" for key in ("Q", "K", "V", "mask") if key in case)


def attention_pair(value, case_label: str):
    """(output, weights) from a probe's per-call record, or Mismatch saying what went wrong."""
    if not value["ok"]:
        error = value["error"]
        raise Mismatch(f"{case_label}: {error.get('hint') or 'your code raised'} "
                       f"({error['type']}: {error['message']}){located(error.get('where'))}", got=f"{error['type']}")
    return unpack(value["value"], 2, f"{SDPA} ({case_label})")


def call_each(student, cases: list[dict]) -> list[dict]:
    """Call the student's attention on every case, keeping going after a failure."""
    return [student.attempt(SDPA, case["Q"], case["K"], case["V"], case.get("mask")) for case in cases]


class Shapes(Check):
    name = "shapes"
    needs_reference = False
    LAYOUTS = {  # label: (leading dims, Lq, Lk, dk, dv)
        "no batch dims": ((), 5, 7, 8, 3),
        "one batch dim": ((2,), 5, 7, 8, 3),
        "batch and heads": ((2, 4), 5, 7, 8, 6),
        "three leading dims": ((2, 3, 2), 4, 6, 8, 5),
        "one query, dv = dk": ((3,), 1, 9, 16, 16),
    }

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"cases": [{"label": label, **random_qkv(generator, *layout)}
                          for label, layout in self.LAYOUTS.items()]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        problems = []
        for case, value in zip(inputs["cases"], got, strict=True):
            lead, lq, lk, _, dv = self.LAYOUTS[case["label"]]
            try:
                output, weights = attention_pair(value, case["label"])
                require_tensor(output, f"output for {shapes_of(case)}", shape=(*lead, lq, dv))
                require_tensor(weights, f"weights for {shapes_of(case)}", shape=(*lead, lq, lk))
            except Mismatch as failure:
                problems.append(failure)
        right = len(inputs["cases"]) - len(problems)
        if not problems:
            return Verdict.ok(f"all {right} batch layouts give output (..., Lq, dv) and weights (..., Lq, Lk)")
        first = problems[0]
        return Verdict.partial(right, len(inputs["cases"]), f"{right} of {len(inputs['cases'])} batch "
                               f"layouts right; first problem: {first.message}",
                               expected=first.expected, got=first.got)


class ValuesFloat32(Check):
    name = "values_float32"
    dtype = torch.float32

    def inputs(self, ctx):
        generator = ctx.generator()
        trials = ctx.budget("random_trials")
        layouts = [((2,), 5, 7, 16, 8), ((2, 3), 6, 6, 8, 4)]
        return {"cases": [random_qkv(generator, *layouts[i % len(layouts)], dtype=self.dtype)
                          for i in range(trials)]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        suffix = str(self.dtype).removeprefix("torch.")
        atol, rtol = ctx.threshold(f"atol_{suffix}"), ctx.threshold(f"rtol_{suffix}")
        worst = 0.0
        for number, (case, value, reference) in enumerate(zip(inputs["cases"], got, expected, strict=True), 1):
            label = f"random case {number} ({shapes_of(case)}, {suffix})"
            output, weights = attention_pair(value, label)
            ref_output, ref_weights = reference["value"]
            for what, tensor, ref in (("weights", weights, ref_weights), ("output", output, ref_output)):
                require_tensor(tensor, f"{what} in {label}", dtype=self.dtype)
                require_close(tensor, ref, f"{what} in {label}", atol=atol, rtol=rtol)
                worst = max(worst, max_abs_error(tensor, ref))
        return Verdict.ok(f"{len(inputs['cases'])} random cases match the reference "
                          f"(max abs error {worst:.2g}, tolerance {atol:g} + {rtol:g}·|expected|)")


class RowsSumToOne(Check):
    name = "rows_sum_to_one"
    needs_reference = False

    def inputs(self, ctx):
        return {"cases": [random_qkv(ctx.generator(), (3, 2), 6, 9, 16, 4)]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        case = inputs["cases"][0]
        _, weights = attention_pair(got[0], shapes_of(case))
        require_distributions(weights, "the weights", shape=(3, 2, 6, 9))
        return Verdict.ok("every row of the weights is non-negative and sums to 1 over the keys")


def masking_cases(generator) -> list[dict]:
    """Causal (broadcast over the batch), key padding (B, 1, Lk) and a random per-query mask;
    every row keeps at least one allowed key."""
    causal = random_qkv(generator, (2,), 6, 6, 8, 5)
    causal["mask"] = torch.ones(6, 6, dtype=torch.bool).tril()
    padding = random_qkv(generator, (2,), 4, 7, 8, 5)
    lengths = torch.tensor([5, 3])
    padding["mask"] = (torch.arange(7)[None, :] < lengths[:, None])[:, None, :]
    scattered = random_qkv(generator, (2, 2), 5, 6, 8, 3)
    mask = torch.rand(2, 2, 5, 6, generator=generator) < 0.6
    mask[..., 0] = True
    scattered["mask"] = mask
    for label, case in zip(("causal mask (Lq, Lk)", "key padding mask (B, 1, Lk)",
                            "random mask (B, H, Lq, Lk)"), (causal, padding, scattered), strict=True):
        case["label"] = label
    return [causal, padding, scattered]


class Masking(Check):
    name = "masking"

    def inputs(self, ctx):
        cases = masking_cases(ctx.generator())
        # The padding case again, with the padded keys and values replaced by huge numbers:
        # nothing behind the mask may change the output.
        padding = cases[1]
        hidden = ~padding["mask"].expand(2, 4, 7)[:, 0, :]  # (B, Lk) keys nobody may see
        noise = 1e4 * torch.randn(padding["V"].shape, generator=ctx.generator("noise"))
        disturbed = dict(padding, label="key padding mask, padded keys/values replaced")
        disturbed["V"] = torch.where(hidden[..., None], noise, padding["V"])
        disturbed["K"] = torch.where(hidden[..., None], noise[..., :1].expand_as(padding["K"]), padding["K"])
        return {"cases": [*cases, disturbed]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        pairs = []
        for case, value, reference in zip(inputs["cases"], got, expected, strict=True):
            label = case["label"]
            output, weights = attention_pair(value, label)
            ref_output, ref_weights = reference["value"]
            require_tensor(weights, f"weights with a {label}", shape=tuple(ref_weights.shape))
            allowed = case["mask"].expand(ref_weights.shape)
            leaked = weights[~allowed]
            if (leaked != 0).any():
                raise Mismatch(f"with a {label}, masked positions get non-zero weight; masked "
                               "weights must be exactly 0 (True in the mask means 'may attend')",
                               expected="0 at every masked position",
                               got=f"{int((leaked != 0).sum())} masked weights non-zero, largest "
                                   f"{leaked.abs().max().item():.3g}")
            require_close(weights, ref_weights, f"weights with a {label}", atol=atol, rtol=rtol)
            require_close(output, ref_output, f"output with a {label}", atol=atol, rtol=rtol)
            pairs.append(output)
        change = max_abs_error(pairs[3], pairs[1])
        if change > atol:
            raise Mismatch("changing keys and values behind a padding mask changed the output",
                           expected="the same output", got=f"output changed by up to {change:.3g}")
        return Verdict.ok("masked weights are exactly 0 for causal, padding and random masks, "
                          "results match the reference, and masked keys/values do not matter")


class FullyMaskedRows(Check):
    name = "fully_masked_rows"

    def inputs(self, ctx):
        case = random_qkv(ctx.generator(), (2,), 4, 5, 8, 3)
        mask = torch.rand(2, 4, 5, generator=ctx.generator("mask")) < 0.7
        mask[:, :, 0] = True
        mask[0, 1] = False  # query 1 of batch 0 may attend to nothing
        mask[1, 3] = False
        case["mask"] = mask
        return {"cases": [case]}

    @staticmethod
    def probe(student, inputs, device):
        return call_each(student, inputs["cases"])

    def verdict(self, ctx, inputs, got, expected):
        case = inputs["cases"][0]
        output, weights = attention_pair(got[0], "a mask with fully masked rows")
        ref_output, ref_weights = expected[0]["value"]
        for what, tensor, ref in (("weights", weights, ref_weights), ("output", output, ref_output)):
            require_tensor(tensor, what, shape=tuple(ref.shape))
            require_finite(tensor, f"{what} with fully masked rows")
        empty = ~case["mask"].any(-1)  # (B, Lq) rows with nothing to attend to
        if (weights[empty] != 0).any() or (output[empty] != 0).any():
            raise Mismatch("a query that may attend to nothing must get all-zero weights and a zero "
                           "output", expected="zeros in rows (0, 1) and (1, 3)",
                           got=f"weights up to {weights[empty].abs().max().item():.3g}, output up to "
                               f"{output[empty].abs().max().item():.3g}")
        atol, rtol = ctx.threshold("atol_float32"), ctx.threshold("rtol_float32")
        require_close(weights, ref_weights, "weights in the other rows", atol=atol, rtol=rtol)
        require_close(output, ref_output, "output in the other rows", atol=atol, rtol=rtol)
        return Verdict.ok("fully masked rows give zero weights and zero output; no NaN anywhere")


class Gradcheck(Check):
    name = "gradcheck"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        plain = random_qkv(generator, (2,), 3, 5, 4, 3, dtype=torch.float64)
        masked = random_qkv(generator, (2,), 3, 5, 4, 3, dtype=torch.float64)
        masked["mask"] = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=torch.bool)
        return {"cases": [plain, masked], "eps": ctx.threshold("gradcheck_eps")}

    @staticmethod
    def probe(student, inputs, device):
        """Analytic Jacobian (autograd) and numerical Jacobian (central differences) of the
        flattened (output, weights) with respect to (Q, K, V), both from the student's code."""
        results = []
        for case in inputs["cases"]:
            mask = case.get("mask")

            def flat(Q, K, V, mask=mask):
                output, weights = student.scaled_dot_product_attention(Q, K, V, mask)
                return torch.cat([output.reshape(-1), weights.reshape(-1)])

            tensors = [case["Q"].clone(), case["K"].clone(), case["V"].clone()]
            analytic = torch.autograd.functional.jacobian(flat, tuple(tensors))
            analytic = torch.cat([block.reshape(block.shape[0], -1) for block in analytic], dim=1)
            results.append({"analytic": analytic, "numeric": numerical_jacobian(flat, tensors, inputs["eps"])})
        return results

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("gradcheck_atol"), ctx.threshold("gradcheck_rtol")
        for label, result in zip(("without a mask", "with a mask"), got, strict=True):
            analytic, numeric = result["analytic"], result["numeric"]
            require_tensor(analytic, "analytic Jacobian", shape=tuple(numeric.shape))
            if not analytic.any() and numeric.any():
                raise Mismatch(f"{label}, no gradient flows through your function: is something "
                               "detached (.detach(), .data, .item(), numpy, torch.no_grad)?",
                               expected="a non-zero Jacobian", got="all-zero gradients")
            require_close(analytic, numeric, f"the analytic Jacobian {label}", atol=atol, rtol=rtol)
        return Verdict.ok(f"autograd gradients equal finite differences in float64 (atol {atol:g}, "
                          f"rtol {rtol:g}, as torch.autograd.gradcheck)")


class GradientVsReference(Check):
    name = "gradient_vs_reference"

    def inputs(self, ctx):
        generator = ctx.generator()
        case = random_qkv(generator, (2,), 5, 6, 8, 4, dtype=torch.float64)
        case["mask"] = torch.ones(5, 6, dtype=torch.bool).tril(1)
        case["grad_output"] = torch.randn(2, 5, 4, generator=generator, dtype=torch.float64)
        case["grad_weights"] = torch.randn(2, 5, 6, generator=generator, dtype=torch.float64)
        return case

    @staticmethod
    def probe(student, inputs, device):
        Q, K, V = (inputs[key].clone().requires_grad_(True) for key in ("Q", "K", "V"))
        output, weights = student.scaled_dot_product_attention(Q, K, V, inputs["mask"])
        loss = (output * inputs["grad_output"]).sum() + (weights * inputs["grad_weights"]).sum()
        loss.backward()
        return [Q.grad, K.grad, V.grad]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("atol_float64"), ctx.threshold("rtol_float64")
        for name, grad, reference in zip("QKV", got, expected, strict=True):
            if grad is None:
                raise Mismatch(f"no gradient reached {name}; is the computation detached?",
                               expected=f"d loss / d {name}", got="None")
            require_close(grad, reference, f"d loss / d {name}", atol=atol, rtol=rtol)
        return Verdict.ok("gradients with respect to Q, K and V match the reference (float64)")


class ScalingDemo(Check):
    name = "scaling_demo"

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"Q": torch.randn(2, 16, 512, generator=generator, dtype=torch.float64),
                "K": torch.randn(2, 16, 512, generator=generator, dtype=torch.float64)}

    @staticmethod
    def probe(student, inputs, device):
        return student.softmax_with_and_without_scaling(inputs["Q"], inputs["K"])

    def verdict(self, ctx, inputs, got, expected):
        unscaled, scaled = unpack(got, 2, "softmax_with_and_without_scaling(Q, K)")
        atol, rtol = ctx.threshold("atol_float64"), ctx.threshold("rtol_float64")
        entropy_unscaled, entropy_scaled = mean_entropy(unscaled), mean_entropy(scaled)
        low, high = ctx.threshold("unscaled_max_entropy"), ctx.threshold("scaled_min_entropy")
        for what, tensor, reference in (("weights_unscaled", unscaled, expected[0]),
                                        ("weights_scaled", scaled, expected[1])):
            require_close(tensor, reference, f"{what} (dk = 512)", atol=atol, rtol=rtol)
        if not (entropy_unscaled < low and entropy_scaled > high):
            raise Mismatch("at dk = 512 the unscaled softmax should be nearly one-hot and the scaled "
                           "one spread out", expected=f"entropy < {low} unscaled, > {high} scaled (nats)",
                           got=f"{entropy_unscaled:.3f} unscaled, {entropy_scaled:.3f} scaled")
        return Verdict.ok(f"mean row entropy {entropy_unscaled:.3f} nats unscaled (nearly one-hot) vs "
                          f"{entropy_scaled:.3f} scaled (of at most ln 16 = 2.773)")


def mean_entropy(weights: torch.Tensor) -> float:
    weights = require_tensor(weights, "weights").to(torch.float64)
    require_finite(weights, "weights")
    return float(-(weights * weights.clamp_min(1e-300).log()).sum(-1).mean())


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"
