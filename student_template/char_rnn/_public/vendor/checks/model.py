"""The model checks of `char_rnn`: ``shapes`` (CharRNN's logits and hidden-state shapes for rnn,
gru and lstm with one and two layers, zero init_hidden, the cell argument choosing the layer),
``initial_loss`` (a fresh model's loss on random targets is near ln V) and ``hidden_state``
(forward(x2, hidden of x1) continues forward(cat(x1, x2))).
"""

from __future__ import annotations

import math

import torch

from autograder.toolkit.check import Check, Verdict
from autograder.toolkit.probe import build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    value_of,
)

from .common import CELLS, cross_entropy, exact_rnn, forward_pair

# ---- the model ---------------------------------------------------------------------------

def hidden_shapes(hidden) -> list | None:
    """The shapes in a hidden state: [shape] for a tensor, [shape, shape] for a pair (probe side)."""
    if isinstance(hidden, torch.Tensor):
        return [list(hidden.shape)]
    if isinstance(hidden, (tuple, list)) and all(isinstance(h, torch.Tensor) for h in hidden):
        return [list(h.shape) for h in hidden]
    return None


def is_zero(hidden) -> bool:
    parts = [hidden] if isinstance(hidden, torch.Tensor) else list(hidden)
    return all(bool((part == 0).all()) for part in parts)


class Shapes(Check):
    name = "shapes"
    needs_reference = False
    V, E, H = 13, 8, 16

    def inputs(self, ctx):
        return {"x": torch.randint(0, self.V, (3, 7), generator=ctx.generator()),
                "configs": [[cell, layers] for cell in CELLS for layers in (1, 2)]}

    @staticmethod
    def probe(student, inputs, device):
        x = inputs["x"]

        def run(cell, layers):
            model = build_module(student, device, "CharRNN", Shapes.V, Shapes.E, Shapes.H, num_layers=layers, cell=cell).eval()
            call = f"CharRNN(13, 8, 16, num_layers={layers}, cell={cell!r})"
            with torch.no_grad(), exact_rnn():
                logits, hidden = forward_pair(model(x), f"{call}.forward(x)")
                initial = model.init_hidden(x.shape[0])
                shapes = hidden_shapes(initial)
                again = student.call(lambda: forward_pair(model(x, initial), f"{call}.forward(x, init_hidden(3))")[0])
            return {"logits": logits, "hidden": hidden_shapes(hidden), "hidden_type": type(hidden).__name__,
                    "init": shapes, "init_type": type(initial).__name__,
                    "init_zero": is_zero(initial) if shapes else False, "again": again,
                    "parameters": sum(p.numel() for p in model.parameters())}

        return [student.call(run, cell, layers) for cell, layers in inputs["configs"]]

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        problems, counts = [], {}
        for (cell, layers), record in zip(inputs["configs"], got, strict=True):
            try:
                counts.setdefault(cell, value_of(record, "")["parameters"] if record["ok"] else None)
                self.judge_config(cell, layers, B, T, record)
            except Mismatch as failure:
                problems.append(failure)
        try:
            self.judge_cells(counts)
        except Mismatch as failure:
            problems.append(failure)
        total = len(inputs["configs"]) + 1
        if not problems:
            return Verdict.ok(f"logits (B, T, V) = {(B, T, self.V)}; hidden (num_layers, B, H) for rnn and gru and a "
                              "pair (h, c) for lstm, with 1 and 2 layers; init_hidden gives zeros of the same shapes; "
                              f"rnn < gru < lstm in parameters ({counts['rnn']}, {counts['gru']}, {counts['lstm']})")
        first = problems[0]
        return Verdict.partial(total - len(problems), total, f"{total - len(problems)} of {total} cases right; first "
                               f"problem: {first.message}", expected=first.expected, got=first.got)

    def judge_config(self, cell: str, layers: int, B: int, T: int, record: dict) -> None:
        call = f"CharRNN(13, 8, 16, num_layers={layers}, cell={cell!r})"
        value = value_of(record, call)
        require_finite(require_tensor(value["logits"], f"logits of {call}.forward(x of shape {(B, T)})",
                                      shape=(B, T, self.V)), f"logits of {call}")
        want = [[layers, B, self.H]] * (2 if cell == "lstm" else 1)
        shown = "a pair (h, c) of" if cell == "lstm" else "a tensor"
        for key, what in (("hidden", f"the hidden state returned by {call}.forward(x)"),
                          ("init", f"{call}.init_hidden({B})")):
            if value[key] != want:
                hint = (" (an LSTM's state is the pair (h, c))" if cell == "lstm" else
                        " (nn.RNN/nn.GRU return one tensor; is the cell argument used?)")
                raise Mismatch(f"{what} should be {shown} (num_layers, B, H) tensor{'s' if cell == 'lstm' else ''}"
                               f"{hint}", expected=" and ".join([str(tuple(want[0]))] * len(want)),
                               got=", ".join(str(tuple(s)) for s in value[key]) if value[key] else
                               f"an object of type {value[key + '_type']}")
        if not value["init_zero"]:
            raise Mismatch(f"{call}.init_hidden({B}) should be all zeros", expected="zeros", got="non-zero entries")
        again = value_of(value["again"], f"{call}.forward(x, init_hidden({B}))")
        change = max_abs_error(require_tensor(again, f"{call}.forward(x, init_hidden({B}))", shape=(B, T, self.V)),
                               value["logits"])
        if change > 1e-5:
            raise Mismatch(f"{call}: forward(x, init_hidden({B})) should equal forward(x) (hidden=None starts from "
                           "zeros)", expected="the same logits", got=f"max abs difference {change:.3g}")

    @staticmethod
    def judge_cells(counts: dict) -> None:
        if any(counts.get(cell) is None for cell in CELLS):
            failed = [cell for cell in CELLS if counts.get(cell) is None]
            raise Mismatch("the cell argument could not be compared: CharRNN failed to build for some cells",
                           expected="CharRNN builds with cell='rnn', 'gru' and 'lstm'", got=f"failed: {failed}")
        n = [counts[cell] for cell in CELLS]
        if not n[0] < n[1] < n[2]:
            raise Mismatch("CharRNN's cell argument does not seem to choose the recurrent layer: a GRU has 3 gates' "
                           "weights and an LSTM 4, so the parameter counts should grow rnn < gru < lstm",
                           expected="rnn < gru < lstm", got=f"rnn {n[0]}, gru {n[1]}, lstm {n[2]} parameters")


class InitialLoss(Check):
    """Random targets: a model that knows nothing predicts about 1/V for each character, so the
    loss is about ln V plus half the variance of its logits (under 0.03 with PyTorch's default init)."""

    name = "initial_loss"
    needs_reference = False
    V = 40

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"x": torch.randint(0, self.V, (4, 64), generator=generator),
                "y": torch.randint(0, self.V, (4, 64), generator=generator)}

    @staticmethod
    def probe(student, inputs, device):
        def run(cell):
            model = build_module(student, device, "CharRNN", InitialLoss.V, 32, 128, cell=cell).eval()
            with torch.no_grad():
                return forward_pair(model(inputs["x"]), f"CharRNN(40, 32, 128, cell={cell!r}).forward(x)")[0]
        return {cell: student.call(run, cell) for cell in CELLS}

    def verdict(self, ctx, inputs, got, expected):
        tolerance, ln_v = ctx.threshold("initial_loss_tol"), math.log(self.V)
        losses = {}
        for cell in CELLS:
            call = f"CharRNN(40, 32, 128, cell={cell!r}) freshly built, on x of shape (4, 64)"
            logits = require_tensor(value_of(got[cell], call), f"logits of {call}", shape=(4, 64, self.V))
            require_finite(logits, f"logits of {call}")
            losses[cell] = cross_entropy(logits, inputs["y"])
            if abs(losses[cell] - ln_v) > tolerance:
                spread = logits.to(torch.float64).std(-1).mean().item()
                raise Mismatch(f"{call}: the cross-entropy on random targets should be near ln V = {ln_v:.3f}, since "
                               "an untrained model has no reason to prefer any character. Yours is "
                               f"{losses[cell]:.3f}; its logits spread by {spread:.3g} on average per position "
                               "(use PyTorch's default initialisation, and return raw logits, not probabilities)",
                               expected=f"{ln_v:.3f} ± {tolerance:g}", got=f"{losses[cell]:.3f}")
        shown = ", ".join(f"{cell} {loss:.3f}" for cell, loss in losses.items())
        return Verdict.ok(f"initial loss on random targets {shown}; ln V = {ln_v:.3f} (tolerance {tolerance:g})")


class HiddenState(Check):
    name = "hidden_state"
    needs_reference = False
    V = 11

    def inputs(self, ctx):
        generator = ctx.generator()
        return {"x1": torch.randint(0, self.V, (2, 6), generator=generator),
                "x2": torch.randint(0, self.V, (2, 5), generator=generator)}

    @staticmethod
    def probe(student, inputs, device):
        x1, x2 = inputs["x1"], inputs["x2"]

        def run(cell):
            model = build_module(student, device, "CharRNN", HiddenState.V, 8, 16, num_layers=2, cell=cell).eval()
            call = f"CharRNN(11, 8, 16, num_layers=2, cell={cell!r})"
            with torch.no_grad(), exact_rnn():
                _, hidden = forward_pair(model(x1), f"{call}.forward(x1)")
                continued = forward_pair(model(x2, hidden), f"{call}.forward(x2, hidden)")[0]
                fresh = forward_pair(model(x2), f"{call}.forward(x2)")[0]
                whole = forward_pair(model(torch.cat([x1, x2], dim=1)), f"{call}.forward(cat(x1, x2))")[0]
            return {"continued": continued, "fresh": fresh, "whole": whole}

        return {cell: student.call(run, cell) for cell in CELLS}

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol, change = ctx.threshold("hidden_atol"), ctx.threshold("hidden_rtol"), ctx.threshold("hidden_min_change")
        problems = []
        for cell in CELLS:
            call = f"CharRNN(11, 8, 16, num_layers=2, cell={cell!r}) in eval mode"
            try:
                value = value_of(got[cell], call)
                shape = (2, 5, self.V)
                continued = require_tensor(value["continued"], f"{call}: forward(x2, hidden)", shape=shape)
                fresh = require_tensor(value["fresh"], f"{call}: forward(x2)", shape=shape)
                whole = require_tensor(value["whole"], f"{call}: forward(cat(x1, x2))", shape=(2, 11, self.V))
                tail = whole[:, 6:]
                if max_abs_error(continued, fresh) <= change:
                    raise Mismatch(f"{call}: forward(x2, hidden) gives the same logits as forward(x2); forward must "
                                   "start from the hidden state it is given (pass it to the recurrent layer)",
                                   expected="logits that depend on the hidden passed in",
                                   got=f"max difference {max_abs_error(continued, fresh):.3g}")
                error = (continued.to(torch.float64) - tail.to(torch.float64)).abs()
                if (error > atol + rtol * tail.to(torch.float64).abs()).any():
                    raise Mismatch(f"{call}: with hidden from forward(x1), forward(x2, hidden) should equal the last 5 "
                                   "steps of forward(cat(x1, x2)): the hidden returned must be the state after the "
                                   "last character of x1, for every layer",
                                   expected=f"the same logits (tolerance {atol:g} + {rtol:g}·|expected|)",
                                   got=f"max abs difference {error.max().item():.3g}")
            except Mismatch as failure:
                problems.append(failure)
        if not problems:
            return Verdict.ok("for rnn, gru and lstm (2 layers): forward(x2, hidden of x1) equals the tail of "
                              "forward(cat(x1, x2)) and differs from forward(x2)")
        first, right = problems[0], len(CELLS) - len(problems)
        return Verdict.partial(right, len(CELLS), f"{right} of {len(CELLS)} cells right; first problem: {first.message}",
                               expected=first.expected, got=first.got)
