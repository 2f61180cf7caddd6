"""Checks of `EncoderLayer`.

``add_and_norm`` checks that each token's output is normalised (a post-norm layer);
``encoder_layer_structure`` compares the layer with its own sub-modules composed as the handout
says, with hooks telling a wrong attention sub-layer from a wrong feed-forward one;
``permutation_equivariance`` checks that permuting the positions of x permutes the output and
both axes of every layer's weights.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    unpack,
    value_of,
    within_tolerance,
)

from .common import LAYER_PARTS, padding_mask, part, randn


class AddAndNorm(Check):
    name = "add_and_norm"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": 3.0 * randn(ctx.generator(), 2, 5, 16) + 2.0}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            layer = build_module(student, device, "EncoderLayer", 16, 4, 32, 0.0).eval()
            with torch.no_grad():
                return layer(inputs["x"])
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        label = "EncoderLayer(16, 4, 32, dropout=0.0) on x (2, 5, 16) with mean 2 and std 3"
        out, _ = unpack(value_of(got, label), 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=(2, 5, 16))
        require_finite(out, f"out ({label})")
        out = out.to(torch.float64)
        mean, variance = out.mean(-1), out.var(-1, unbiased=False)
        mean_tol, var_tol = ctx.threshold("norm_mean_tol"), ctx.threshold("norm_var_tol")
        if mean.abs().max() > mean_tol or (variance - 1).abs().max() > var_tol:
            raise Mismatch(f"{label}: each token's output should be normalised (mean 0, variance 1 over its "
                           "16 features, with LayerNorm's default weight 1 and bias 0). In a post-norm layer the "
                           "last step is norm2(h + feed_forward(h)); a pre-norm layer (x + sublayer(norm(x))) "
                           "does not end with a LayerNorm",
                           expected=f"|mean| <= {mean_tol:g}, |variance - 1| <= {var_tol:g} per token",
                           got=f"mean from {mean.min().item():.3g} to {mean.max().item():.3g}, variance from "
                               f"{variance.min().item():.3g} to {variance.max().item():.3g}")
        return Verdict.ok(f"every token of the output has mean 0 and variance 1 (max |mean| "
                          f"{mean.abs().max().item():.1g}, max |variance - 1| {(variance - 1).abs().max().item():.1g})")


LAYER_CONTRACT = ("the sub-modules self_attn (MultiHeadSelfAttention), feed_forward (FeedForward), "
                  "norm1 and norm2 (nn.LayerNorm) and dropout")


class EncoderLayerStructure(Check):
    """The layer's output against its own sub-modules composed as the handout says. Hooks
    record what feed_forward received, which tells the attention sub-layer from the
    feed-forward one; the LayerNorms get distinct affine parameters so that norm1 and norm2
    cannot stand in for each other."""

    name = "encoder_layer_structure"
    needs_reference = False
    D, HEADS, D_FF = 16, 4, 32

    def inputs(self, ctx):
        generator = ctx.generator()
        norms = {f"{name}.{kind}": (1.0 if kind == "weight" else 0.0) + 0.3 * randn(generator, self.D)
                 for name in ("norm1", "norm2") for kind in ("weight", "bias")}
        x = randn(generator, 2, 6, self.D)
        return {"cases": [{"label": "without padding", "x": x, "mask": None},
                          {"label": "with a key_padding_mask (lengths 6 and 3)", "x": x,
                           "mask": padding_mask([6, 3], 6)}],
                "norms": norms}

    @staticmethod
    def probe(student, inputs, device):
        cls = EncoderLayerStructure

        def run(case):
            x, mask = case["x"], case["mask"]
            layer = build_module(student, device, "EncoderLayer", cls.D, cls.HEADS, cls.D_FF, 0.0).eval()
            parts = {name: part(layer, name, "EncoderLayer", LAYER_CONTRACT) for name in LAYER_PARTS}
            with torch.no_grad():
                for key, value in inputs["norms"].items():
                    norm, kind = key.split(".")
                    tensor = getattr(parts[norm], kind, None)
                    if isinstance(tensor, torch.Tensor) and tuple(tensor.shape) == tuple(value.shape):
                        tensor.copy_(value)
            seen = {}

            def attn_hook(module, args, kwargs, output):
                given = args[1] if len(args) > 1 else kwargs.get("key_padding_mask")
                seen.setdefault("attn_mask_given", given is not None)

            def ff_hook(module, args, kwargs, output):
                given = args[0] if args else next(iter(kwargs.values()), None)
                seen.setdefault("ff_input", given.detach().clone() if isinstance(given, torch.Tensor) else None)

            handles = [parts["self_attn"].register_forward_hook(attn_hook, with_kwargs=True),
                       parts["feed_forward"].register_forward_hook(ff_hook, with_kwargs=True)]
            try:
                with torch.no_grad():
                    layer_out = layer(x, key_padding_mask=mask)
            finally:
                for handle in handles:
                    handle.remove()
            attn, norm1, norm2, ff = (parts[name] for name in ("self_attn", "norm1", "norm2", "feed_forward"))
            with torch.no_grad():
                attended, attn_weights = attn(x, key_padding_mask=mask)
                h = norm1(x + attended)
                pre_h = x + attn(norm1(x), key_padding_mask=mask)[0]
                ff_inputs = {  # what feed_forward receives in common mistakes
                    "norm1(self_attn(x)[0]), without the residual x": norm1(attended),
                    "x + self_attn(x)[0], without norm1": x + attended,
                    "norm2(x + self_attn(norm1(x))[0]), a pre-norm layer": norm2(pre_h),
                    "norm1(x + self_attn(x)[0]) computed without the key_padding_mask":
                        norm1(x + attn(x)[0]),
                }
                ff_h = ff(h)
                outputs = {  # the layer's output in common mistakes of the second sub-layer
                    "norm2(feed_forward(h)), without the residual h": norm2(ff_h),
                    "h + feed_forward(h), without norm2": h + ff_h,
                    "norm2(x + feed_forward(h)), the residual taken from x instead of h": norm2(x + ff_h),
                    "norm1(h + feed_forward(h)), norm1 used twice": norm1(h + ff_h),
                }
            return {"layer": layer_out, "expected": norm2(h + ff_h), "h": h, "attn_weights": attn_weights,
                    "ff_input": seen.get("ff_input"), "attn_mask_given": seen.get("attn_mask_given"),
                    "ff_inputs": ff_inputs, "outputs": outputs}

        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("encoder_atol"), ctx.threshold("encoder_rtol")
        for case, record in zip(inputs["cases"], got, strict=True):
            label = f"EncoderLayer(16, 4, 32, dropout=0.0) in eval mode, {case['label']}"
            value = value_of(record, label)
            out, weights = unpack(value["layer"], 2, f"{label}: forward")
            right = value["expected"]
            require_tensor(out, f"out ({label})", shape=tuple(case["x"].shape))
            require_tensor(weights, f"weights ({label})", shape=(2, self.HEADS, 6, 6))
            if not within_tolerance(out, right, atol, rtol):
                self.explain(label, case, value, out, right, atol, rtol)
            if not within_tolerance(weights, value["attn_weights"], atol, rtol):
                raise Mismatch(f"{label}: the returned weights should be the ones self_attn returned",
                               expected="self_attn(x, key_padding_mask)[1]",
                               got=f"max abs difference {max_abs_error(weights, value['attn_weights']):.3g}")
        return Verdict.ok("with and without padding, the layer equals norm2(h + feed_forward(h)) with "
                          "h = norm1(x + self_attn(x)[0]), built from your own sub-modules, and returns the "
                          "attention weights")

    @staticmethod
    def explain(label, case, value, out, right, atol, rtol):
        error = f"max abs error {max_abs_error(out, right):.3g}"
        expected = "norm2(h + feed_forward(h)), h = norm1(x + self_attn(x, key_padding_mask)[0])"
        if case["mask"] is not None and value["attn_mask_given"] is False:
            raise Mismatch(f"{label}: the key_padding_mask is not passed on to self_attn, so padded tokens "
                           "are attended to", expected="self_attn(x, key_padding_mask)",
                           got=f"self_attn called without a mask ({error})")
        ff_input = value["ff_input"]
        if ff_input is None:
            raise Mismatch(f"{label}: forward never calls self.feed_forward; the second sub-layer is "
                           "norm2(h + feed_forward(h))", expected=expected, got=f"feed_forward not called ({error})")
        if within_tolerance(ff_input, value["h"], atol, rtol):
            match = next((f"; yours equals {name}" for name, tensor in value["outputs"].items()
                          if within_tolerance(out, tensor, atol, rtol)), "")
            raise Mismatch(f"{label}: the attention sub-layer is right (feed_forward receives "
                           f"h = norm1(x + self_attn(x)[0])) but the feed-forward sub-layer is not: the "
                           f"output should be norm2(h + feed_forward(h)){match}",
                           expected="norm2(h + feed_forward(h))", got=error)
        match = next((f"; it receives {name}" for name, tensor in value["ff_inputs"].items()
                      if within_tolerance(ff_input, tensor, atol, rtol)), "")
        raise Mismatch(f"{label}: the attention sub-layer is wrong: feed_forward should receive "
                       f"h = norm1(x + dropout(self_attn(x, key_padding_mask)[0])){match}",
                       expected=expected, got=f"{error} in the output")


def encoder_stack(student, device, count: int):
    layers = [build_module(student, device, "EncoderLayer", 16, 4, 32, 0.0).eval() for _ in range(count)]

    def run(x, mask=None):
        weights = []
        for layer in layers:
            x, w = layer(x, key_padding_mask=mask)
            weights.append(w)
        return x, weights

    return run


class PermutationEquivariance(Check):
    name = "permutation_equivariance"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        perms = []
        while len(perms) < ctx.budget("permutations"):
            perm = torch.randperm(7, generator=generator)
            if not torch.equal(perm, torch.arange(7)):
                perms.append(perm)
        return {"x": randn(generator, 2, 7, 16), "perms": perms}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            stack = encoder_stack(student, device, 2)
            x = inputs["x"]
            with torch.no_grad():
                return {"plain": stack(x), "permuted": [stack(x[:, perm]) for perm in inputs["perms"]]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("encoder_atol"), ctx.threshold("encoder_rtol")
        label = "two EncoderLayer(16, 4, 32) applied in turn to x (2, 7, 16)"
        value = value_of(got, label)
        out, weights = unpack(value["plain"], 2, f"{label}: forward")
        require_tensor(out, f"out ({label})", shape=(2, 7, 16))
        hint = ("; nothing inside EncoderLayer may depend on the position index: no positional encoding "
                "there, and split the heads with view(B, L, num_heads, d_head).transpose(1, 2) "
                "(view(B, num_heads, L, d_head) mixes positions)")
        for perm, permuted in zip(inputs["perms"], value["permuted"], strict=True):
            moved_out, moved_weights = unpack(permuted, 2, f"{label}: forward")
            order = perm.tolist()
            what = f"{label} on x[:, {order}]"
            right = out[:, perm]
            require_tensor(moved_out, f"out of {what}", shape=tuple(right.shape))
            if not within_tolerance(moved_out, right, atol, rtol):
                raise Mismatch(f"{what}: the output should be the original output permuted the same way{hint}",
                               expected="out[:, perm]", got=f"max abs error {max_abs_error(moved_out, right):.3g}")
            for index, (w, moved) in enumerate(zip(weights, moved_weights, strict=True)):
                right_w = w[:, :, perm][:, :, :, perm]
                require_tensor(moved, f"weights of layer {index} ({what})", shape=tuple(right_w.shape))
                if not within_tolerance(moved, right_w, atol, rtol):
                    raise Mismatch(f"{what}: layer {index}'s weights should be the original ones permuted on "
                                   f"both the query and the key axis{hint}",
                                   expected="weights[:, :, perm][:, :, :, perm]",
                                   got=f"max abs error {max_abs_error(moved, right_w):.3g}")
        return Verdict.ok(f"for {len(inputs['perms'])} permutations, permuting the positions permutes the "
                          "output and both axes of every layer's weights")
