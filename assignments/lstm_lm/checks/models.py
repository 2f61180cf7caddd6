"""Checks of the three language models' forward.

``lm_shapes`` checks the log_probs shape of every model, the state of the LSTM models and the
attention weights of the attention model; ``log_probs_normalised`` checks that exp(log_probs)
sums to 1 over the vocabulary at every position; ``state_carries`` checks that running a
sequence in two halves, with the first half's state handed on, equals running it whole.
"""

from __future__ import annotations

import torch

from autograder.toolkit.check import Check
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import ATTENTION, MODEL_CASES, VOCAB, pair, per_model, run_model, tokens


class LmShapes(Check):
    name = "lm_shapes"
    needs_reference = False

    def inputs(self, ctx):
        return {"x": tokens(ctx.generator(), 3, 7)}

    @staticmethod
    def probe(student, inputs, device):
        return {case: student.call(lambda case=case: run_model(student, device, case, (inputs["x"],))[0])
                for case in MODEL_CASES}

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape

        def judge(case):
            label = f"{case} on x of shape {(B, T)}"
            first, second = value_of(got[case], label)
            require_tensor(first, f"log_probs of {label}", shape=(B, T, VOCAB))
            if MODEL_CASES[case][0] == ATTENTION:
                require_tensor(second, f"attention weights of {label}", shape=(B, T, T))
            elif second is None:
                raise Mismatch(f"{label} returned state None: return the state after the last position, so that it "
                               "can be passed back to continue the sequence", expected="(log_probs, state)",
                               got="(log_probs, None)")

        return per_model(list(MODEL_CASES), judge, f"log_probs {(B, T, VOCAB)} from all {len(MODEL_CASES)} models "
                         f"(nn.LSTM with 1 and 2 layers, scratch, attention), a state from the LSTM models, weights "
                         f"{(B, T, T)} from the attention model")


class LogProbsNormalised(Check):
    """log_probs are log-probabilities: exp sums to 1 over the vocabulary at every position."""

    name = "log_probs_normalised"
    needs_reference = False
    CASES = [case for case in MODEL_CASES if "num_layers" not in case]

    def inputs(self, ctx):
        return {"x": tokens(ctx.generator(), 2, 6)}

    @staticmethod
    def probe(student, inputs, device):
        return {case: student.call(lambda case=case: run_model(student, device, case, (inputs["x"],))[0][0])
                for case in LogProbsNormalised.CASES}

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        tolerance = ctx.threshold("normalised_atol")

        def judge(case):
            label = f"log_probs of {case}"
            log_probs = require_tensor(value_of(got[case], case), label, shape=(B, T, VOCAB))
            require_finite(log_probs, label)
            require_log_probs(log_probs, label, tolerance)

        return per_model(self.CASES, judge, f"at every position of all {len(self.CASES)} models, exp(log_probs) sums "
                         f"to 1 over the vocabulary (within {tolerance:g})")

def require_log_probs(log_probs: torch.Tensor, label: str, tolerance: float) -> None:
    """log_softmax output: logsumexp over the last axis is 0 everywhere (hints for the usual slips)."""
    log_probs = log_probs.to(torch.float64)
    total = torch.logsumexp(log_probs, dim=-1)
    gap = total.abs().max().item()
    if gap <= tolerance:
        return
    sums = log_probs.sum(-1)
    if (log_probs >= 0).all() and (sums - 1).abs().max().item() <= tolerance:
        hint = "; these are probabilities (softmax): return their log, torch.log_softmax(scores, dim=-1)"
    elif any(torch.logsumexp(log_probs, dim=axis).abs().max().item() <= tolerance for axis in (0, 1)):
        hint = "; they are normalised over the wrong axis: use log_softmax over the last one (the vocabulary)"
    else:
        hint = "; these look like raw scores (logits): apply torch.log_softmax(scores, dim=-1)"
    raise Mismatch(f"{label} are not log-probabilities: exp(log_probs) should sum to 1 over the vocabulary at every "
                   f"position{hint}", expected="logsumexp(log_probs, dim=-1) = 0",
                   got=f"logsumexp from {total.min().item():.4g} to {total.max().item():.4g}")


class StateCarries(Check):
    """Running a sequence in two halves, handing the first half's state to the second, gives the
    same log-probabilities as running it whole; state=None is the same as no state."""

    name = "state_carries"
    needs_reference = False
    CASES = [case for case in MODEL_CASES if not case.startswith(ATTENTION)]
    SPLIT = 4

    def inputs(self, ctx):
        return {"x": tokens(ctx.generator(), 2, 10)}

    @staticmethod
    def probe(student, inputs, device):
        x, split = inputs["x"], StateCarries.SPLIT

        def run(case):
            name, args = MODEL_CASES[case]
            model = build_module(student, device, name, *args).eval()
            with torch.no_grad():
                whole = pair(model(x), f"{name}.forward(x)")[0]
                explicit = pair(model(x, None), f"{name}.forward(x, None)")[0]
                first, state = pair(model(x[:, :split]), f"{name}.forward(x[:, :{split}])")
                second = pair(model(x[:, split:], state), f"{name}.forward(x[:, {split}:], state)")[0]
            return {"whole": whole, "explicit": explicit, "first": first, "second": second}

        return {case: student.call(run, case) for case in StateCarries.CASES}

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        split, atol = self.SPLIT, ctx.threshold("state_atol")

        def judge(case):
            value = value_of(got[case], case)
            whole = require_tensor(value["whole"], f"log_probs of {case} on x {(B, T)}", shape=(B, T, VOCAB))
            explicit = require_tensor(value["explicit"], f"log_probs of {case}(x, None)", shape=(B, T, VOCAB))
            first = require_tensor(value["first"], f"log_probs of {case} on x[:, :{split}]", shape=(B, split, VOCAB))
            second = require_tensor(value["second"], f"log_probs of {case} on x[:, {split}:] with the state",
                                    shape=(B, T - split, VOCAB))
            for mine, right, problem in (
                    (explicit, whole, "forward(x, None) differs from forward(x): state=None should mean a zero state"),
                    (first, whole[:, :split], f"the log_probs of the first {split} positions change when the "
                     "sequence is cut after them: position t must depend only on tokens 0..t"),
                    (second, whole[:, split:], f"x[:, {split}:] run from the state returned for x[:, :{split}] should "
                     "give the log_probs of running x whole; return the state after the last position and start "
                     "from the state you are given")):
                if not within_tolerance(mine, right, atol, 0.0):
                    raise Mismatch(f"{case}: {problem}", expected="the same log_probs",
                                   got=f"max abs difference {max_abs_error(mine, right):.3g}")

        return per_model(self.CASES, judge, f"for all {len(self.CASES)} models, x[:, :{split}] then x[:, {split}:] with "
                         f"the returned state equals x run whole (x {(B, T)}), and state=None equals no state")
