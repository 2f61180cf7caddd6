"""Hidden checks of the `transformer_encoder` assignment (grader only)."""

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

from .checks import random_tokens, shape_text

CONFIG = (20, 16, 4, 32, 2, 16, 0)  # vocab_size, d_model, num_heads, d_ff, num_layers, max_len, pad_idx
LABEL = "MiniTransformerEncoder(20, 16, 4, 32, 2, 16, pad_idx=0)"


class EncoderUsesPositions(Check):
    """Without positional encodings a Transformer encoder is permutation-equivariant and
    gives a repeated token the same vector everywhere; with them, neither holds."""

    name = "encoder_uses_positions"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        tokens = random_tokens(generator, [7, 7], 7, 1, 20, 0)
        perm = torch.tensor([3, 0, 6, 1, 5, 2, 4])
        return {"tokens": tokens, "perm": perm, "repeated": torch.full((1, 6), 5)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_module(student, device, "MiniTransformerEncoder", *CONFIG).eval()
            with torch.no_grad():
                return {"plain": model(inputs["tokens"])[0], "permuted": model(inputs["tokens"][:, inputs["perm"]])[0],
                        "repeated": model(inputs["repeated"])[0]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        value = value_of(got, LABEL)
        tokens, perm = inputs["tokens"], inputs["perm"]
        plain = require_tensor(value["plain"], f"output of {LABEL}", shape=(*tokens.shape, 16))
        permuted = require_tensor(value["permuted"], f"output of {LABEL} on permuted tokens", shape=tuple(plain.shape))
        repeated = require_tensor(value["repeated"], f"output of {LABEL} on one token repeated", shape=(1, 6, 16))
        for tensor, what in ((plain, "output"), (permuted, "output on permuted tokens"), (repeated, "output")):
            require_finite(tensor, f"{what} of {LABEL}")
        minimum = ctx.threshold("position_min_change")
        moved = max_abs_error(permuted, plain[:, perm])
        spread = max_abs_error(repeated, repeated[:, :1].expand_as(repeated))
        if moved <= minimum or spread <= minimum:
            raise Mismatch(f"{LABEL} ignores word order: permuting the tokens only permutes the output "
                           f"(difference {moved:.3g}) and a sentence of one repeated token gives the same vector "
                           f"at every position (spread {spread:.3g}); add the sinusoidal positional encodings "
                           "to the embeddings", expected=f"both above {minimum:g}",
                           got=f"{moved:.3g} and {spread:.3g}")
        return Verdict.ok(f"the encoder depends on positions (permuted tokens: output differs by {moved:.2g} from "
                          f"the permuted output; repeated token: vectors differ by {spread:.2g})")


class PaddingInvariance(Check):
    """Each sentence of a padded batch is encoded as if it were alone, for every layer."""

    name = "padding_invariance"
    needs_reference = False
    LENGTHS = [7, 4, 2]

    def inputs(self, ctx):
        return {"tokens": random_tokens(ctx.generator(), self.LENGTHS, 7, 1, 20, 0), "lengths": self.LENGTHS}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            model = build_module(student, device, "MiniTransformerEncoder", *CONFIG).eval()
            tokens = inputs["tokens"]
            with torch.no_grad():
                return {"batch": model(tokens),
                        "alone": [model(tokens[b:b + 1, :n]) for b, n in enumerate(inputs["lengths"])]}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("encoder_atol"), ctx.threshold("encoder_rtol")
        tokens = inputs["tokens"]
        label = f"{LABEL} on tokens {shape_text(tokens)} with lengths {inputs['lengths']}"
        value = value_of(got, label)
        out, weights = unpack(value["batch"], 2, f"{label}: forward")
        require_tensor(out, f"output ({label})", shape=(*tokens.shape, 16))
        for b, n in enumerate(inputs["lengths"]):
            alone_out, alone_weights = unpack(value["alone"][b], 2, f"{label}: forward")
            what = f"sentence {b} (length {n}) in the padded batch vs alone"
            require_tensor(alone_out, f"output for {what}", shape=(1, n, 16))
            if not within_tolerance(out[b, :n], alone_out[0], atol, rtol):
                raise Mismatch(f"{what}: the real tokens' outputs should not depend on the padding; is the mask "
                               "(tokens == pad_idx) passed to every layer and applied to the keys, and are the "
                               "heads split without mixing positions?",
                               expected="the same outputs",
                               got=f"max abs difference {max_abs_error(out[b, :n], alone_out[0]):.3g}")
            for index, (w, w_alone) in enumerate(zip(weights, alone_weights, strict=True)):
                require_tensor(w_alone, f"layer {index}'s weights for {what}", shape=(1, 4, n, n))
                if not within_tolerance(w[b, :, :n, :n], w_alone[0], atol, rtol):
                    raise Mismatch(f"{what}: layer {index}'s weights among the real tokens should not depend on "
                                   "the padding", expected="the same weights",
                                   got=f"max abs difference {max_abs_error(w[b, :, :n, :n], w_alone[0]):.3g}")
        return Verdict.ok("every sentence of the padded batch gets the same outputs and weights as alone")

