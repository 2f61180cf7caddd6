"""The network checks of `minmax_attention`: ``shapes`` (AttentionNetwork's logits and attention
weights have the right shapes for several sizes, the same logits with and without
return_attention) and ``weights_are_distributions`` (each query's weights over the keys are a
distribution), with the helpers that build the student's network.
"""

from __future__ import annotations

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_finite,
    require_tensor,
    value_of,
)

from .task import NUM_VALUES, VOCAB_SIZE, random_examples

# ---- the network -------------------------------------------------------------------------

CONFIGS = [(32, 4), (24, 2), (16, 1)]  # (d_model, num_heads)


def network_call(d_model: int, num_heads: int) -> str:
    return f"AttentionNetwork(vocab_size=131, d_model={d_model}, num_heads={num_heads})"


def build_network(student, device: str, d_model: int, num_heads: int):
    """The student's network with only the documented keyword arguments, in eval mode."""
    model = build_module(student, device, "AttentionNetwork", vocab_size=VOCAB_SIZE, d_model=d_model,
                         num_heads=num_heads)
    return model.eval()


def attention_pair(output, call: str):
    """(logits, weights) from forward(x, return_attention=True), or a ContractError (probe side)."""
    if not isinstance(output, (tuple, list)) or len(output) != 2:
        raise ContractError(f"{call} should return a pair (logits, weights)", expected="(logits, weights)",
                            got=describe(output))
    return output


class Shapes(Check):
    name = "shapes"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": random_examples(5, ctx.generator()), "configs": CONFIGS}

    @staticmethod
    def probe(student, inputs, device):
        def run(d_model, num_heads):
            model = build_network(student, device, d_model, num_heads)
            with torch.no_grad():
                logits = model(inputs["x"])
                pair = attention_pair(model(inputs["x"], return_attention=True),
                                      f"{network_call(d_model, num_heads)}.forward(x, return_attention=True)")
            return {"logits": logits, "pair": list(pair)}

        return [student.call(run, d_model, num_heads) for d_model, num_heads in inputs["configs"]]

    def verdict(self, ctx, inputs, got, expected):
        B = len(inputs["x"])
        problems = []
        for (d_model, num_heads), record in zip(inputs["configs"], got, strict=True):
            call = f"{network_call(d_model, num_heads)} in eval mode, x of shape ({B}, 4)"
            try:
                value = value_of(record, call)
                logits = require_tensor(value["logits"], f"{call}: forward(x)", shape=(B, NUM_VALUES))
                require_finite(logits, f"{call}: forward(x)")
                again, weights = value["pair"]
                again = require_tensor(again, f"{call}: the logits of forward(x, return_attention=True)",
                                       shape=(B, NUM_VALUES))
                require_tensor(weights, f"{call}: the weights of forward(x, return_attention=True)",
                               shape=(B, num_heads, 4, 4))
                if not torch.allclose(again.to(torch.float64), logits.to(torch.float64), atol=1e-5, rtol=1e-4):
                    raise Mismatch(f"{call}: forward(x, return_attention=True) should return the same logits as "
                                   "forward(x)", expected="the same logits",
                                   got=f"max abs difference {max_abs_error(again, logits):.3g}")
            except Mismatch as failure:
                problems.append(failure)
        right = len(inputs["configs"]) - len(problems)
        if not problems:
            return Verdict.ok(f"logits ({B}, 128) and weights ({B}, num_heads, 4, 4) for num_heads = 4, 2 and 1, "
                              "the same logits with and without return_attention")
        first = problems[0]
        return Verdict.partial(right, len(inputs["configs"]), f"{right} of {len(inputs['configs'])} sizes right; "
                               f"first problem: {first.message}", expected=first.expected, got=first.got)


class WeightsAreDistributions(Check):
    name = "weights_are_distributions"
    needs_reference = False
    CONFIGS = [(32, 4), (24, 2)]

    def inputs(self, ctx):
        return {"x": random_examples(16, ctx.generator()), "configs": self.CONFIGS}

    @staticmethod
    def probe(student, inputs, device):
        weights = []
        for d_model, num_heads in inputs["configs"]:
            model = build_network(student, device, d_model, num_heads)
            with torch.no_grad():
                call = f"{network_call(d_model, num_heads)}.forward(x, return_attention=True)"
                weights.append(attention_pair(model(inputs["x"], return_attention=True), call)[1])
        return weights

    def verdict(self, ctx, inputs, got, expected):
        B = len(inputs["x"])
        for (d_model, num_heads), weights in zip(inputs["configs"], got, strict=True):
            what = f"the weights of {network_call(d_model, num_heads)} (eval mode)"
            require_tensor(weights, what, shape=(B, num_heads, 4, 4))
            columns = weights.to(torch.float64).sum(-2)
            if (torch.isfinite(weights).all() and not torch.allclose(weights.to(torch.float64).sum(-1),
                                                                      torch.ones(()).to(torch.float64), atol=1e-5)
                    and torch.allclose(columns, torch.ones_like(columns), atol=1e-5)):
                raise Mismatch(f"{what}: the columns sum to 1, not the rows: the softmax is taken over the queries. "
                               "Take it over the keys, the last axis (softmax(scores, dim=-1)), so that each query's "
                               "weights form a distribution", expected="weights[b, h, q, :].sum() == 1",
                               got="weights[b, h, :, k].sum() == 1")
            require_distributions(weights, what, shape=(B, num_heads, 4, 4))
        return Verdict.ok(f"for {B} examples and 4 and 2 heads, every query's weights over the 4 keys are "
                          "non-negative and sum to 1")
