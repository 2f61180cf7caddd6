"""Checks of the hand-written `LSTMCell`, and the rule against PyTorch's LSTM.

``lstm_cell_matches_pytorch`` copies the grader's float64 weights into weight_ih, weight_hh,
bias_ih, bias_hh and compares h, c and the gradients with ``torch.nn.LSTMCell``, which the
verdict runs itself (with hints for the common mistakes: gate order, activations, missing
terms, the state read the wrong way round); ``from_scratch`` forbids nn.LSTM, nn.LSTMCell and
torch.lstm_cell in the cell and the models built on it.
"""

from __future__ import annotations

import itertools

import torch

from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_finite,
    require_tensor,
    value_of,
    within_tolerance,
)

from .common import pair

PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = "ifgo"  # PyTorch's order of the four blocks of rows


def load_cell(cell, weights: dict, input_size: int, hidden_size: int) -> None:
    """Copy the grader's float64 weights into the cell's four parameters (names and shapes first)."""
    label = f"LSTMCell({input_size}, {hidden_size})"
    have = ", ".join(f"{name} {tuple(p.shape)}" for name, p in cell.named_parameters()) or "none"
    for name in PARAMETERS:
        parameter = getattr(cell, name, None)
        if not isinstance(parameter, torch.nn.Parameter):
            raise ContractError(f"{label} has no parameter `{name}`: the handout fixes the names weight_ih, "
                                "weight_hh, bias_ih, bias_hh (nn.Parameter attributes of the cell), and the "
                                "grader copies its weights into them", expected=f"an nn.Parameter `{name}`",
                                got=f"parameters: {have}" if parameter is None else f"`{name}` is a {type(parameter).__name__}")
        if tuple(parameter.shape) != tuple(weights[name].shape):
            raise ContractError(f"{label}.{name} has the wrong shape (4H rows: the gates i, f, g, o stacked)",
                                expected=f"{name} of shape {tuple(weights[name].shape)}",
                                got=f"{name} of shape {tuple(parameter.shape)}")
    cell.to(torch.float64)
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(cell, name).copy_(weights[name])


def oracle_cell(weights: dict, x, h0, c0, dh, dc) -> dict:
    """torch.nn.LSTMCell (float64) with the grader's weights, in the grading process: outputs
    without and with a state, and the gradients of sum(h * dh) + sum(c * dc)."""
    hidden_size, input_size = weights["weight_hh"].shape[1], weights["weight_ih"].shape[1]
    with torch.random.fork_rng(devices=[]):  # its own init must not move the grader's RNG
        cell = torch.nn.LSTMCell(input_size, hidden_size, dtype=torch.float64)
    with torch.no_grad():
        for name in PARAMETERS:
            getattr(cell, name).copy_(weights[name])
        h_none, c_none = cell(x)
    x, h0, c0 = (t.detach().clone().requires_grad_(True) for t in (x, h0, c0))
    h, c = cell(x, (h0, c0))
    ((h * dh).sum() + (c * dc).sum()).backward()
    grads = {"x": x.grad, "h0": h0.grad, "c0": c0.grad, **{name: getattr(cell, name).grad for name in PARAMETERS}}
    return {"none": [h_none, c_none], "state": [h.detach(), c.detach()], "grads": grads}


def mistaken_step(weights: dict, x, h, c, mistake: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(h', c') in float64 as a common mistake computes them (for hints)."""
    if mistake == "the state read as (c, h) instead of (h, c)":
        h, c = c, h
    gates = x @ weights["weight_ih"].T + h @ weights["weight_hh"].T
    gates = gates + (0 if mistake == "bias_ih not added" else weights["bias_ih"])
    gates = gates + (0 if mistake == "bias_hh not added" else weights["bias_hh"])
    order = mistake.removeprefix("gates read in the order ").replace(", ", "") if mistake.startswith("gates") else GATES
    blocks = dict(zip(order, gates.chunk(4, dim=1), strict=True))
    activation = {gate: torch.sigmoid for gate in "ifo"} | {"g": torch.tanh}
    swapped = {"the forget gate with tanh instead of sigmoid": "f", "the input gate with tanh instead of sigmoid": "i",
               "the output gate with tanh instead of sigmoid": "o", "the candidate g with sigmoid instead of tanh": "g"}
    if mistake in swapped:
        gate = swapped[mistake]
        activation[gate] = torch.sigmoid if gate == "g" else torch.tanh
    i, f, g, o = (activation[gate](blocks[gate]) for gate in GATES)
    new_c = {"c' = i * g (the forget term f * c is missing)": i * g,
             "c' = f * c + g (the input gate is missing)": f * c + g}.get(mistake, f * c + i * g)
    new_h = {"h' = o * c' (the tanh of the new cell is missing)": o * new_c,
             "h' = tanh(c') (the output gate is missing)": torch.tanh(new_c),
             "h' = o * tanh(c), with the old cell c": o * torch.tanh(c)}.get(mistake, o * torch.tanh(new_c))
    return new_h, new_c


CELL_MISTAKES = (
    *(f"gates read in the order {', '.join(order)}" for order in itertools.permutations(GATES)
      if "".join(order) != GATES),
    "the forget gate with tanh instead of sigmoid", "the input gate with tanh instead of sigmoid",
    "the output gate with tanh instead of sigmoid", "the candidate g with sigmoid instead of tanh",
    "c' = i * g (the forget term f * c is missing)", "c' = f * c + g (the input gate is missing)",
    "h' = o * c' (the tanh of the new cell is missing)", "h' = tanh(c') (the output gate is missing)",
    "h' = o * tanh(c), with the old cell c",
    "the state read as (c, h) instead of (h, c)", "bias_ih not added", "bias_hh not added",
)


class LstmCellMatchesPytorch(Check):
    """The student's LSTMCell with the grader's float64 weights copied into weight_ih, weight_hh,
    bias_ih, bias_hh: h and c without a state (zeros) and with one, and the gradients of
    sum(h * dh) + sum(c * dc) for the input, both states and the four parameters, against
    torch.nn.LSTMCell run by the verdict."""

    name = "lstm_cell_matches_pytorch"
    needs_reference = False
    INPUT, HIDDEN, BATCH = 5, 6, 3

    def inputs(self, ctx):
        generator = ctx.generator()

        def randn(*shape, scale=1.0):
            return torch.randn(*shape, generator=generator, dtype=torch.float64) * scale

        H, size, B = self.HIDDEN, self.INPUT, self.BATCH
        weights = {"weight_ih": randn(4 * H, size, scale=0.6), "weight_hh": randn(4 * H, H, scale=0.6),
                   "bias_ih": randn(4 * H, scale=0.5), "bias_hh": randn(4 * H, scale=0.5)}
        return {"weights": weights, "x": randn(B, size), "h0": randn(B, H), "c0": randn(B, H, scale=2.0),
                "dh": randn(B, H), "dc": randn(B, H)}

    @staticmethod
    def probe(student, inputs, device):
        def run():
            weights = inputs["weights"]
            hidden, size = weights["weight_hh"].shape[1], weights["weight_ih"].shape[1]
            cell = build_module(student, device, "LSTMCell", size, hidden)
            load_cell(cell, weights, size, hidden)
            with torch.no_grad():
                none = pair(cell(inputs["x"]), "LSTMCell.forward(x)")
            x, h0, c0 = (inputs[key].clone().requires_grad_(True) for key in ("x", "h0", "c0"))
            h, c = pair(cell(x, (h0, c0)), "LSTMCell.forward(x, (h, c))")
            ((h * inputs["dh"]).sum() + (c * inputs["dc"]).sum()).backward()
            grads = {"x": x.grad, "h0": h0.grad, "c0": c0.grad, **{name: getattr(cell, name).grad for name in PARAMETERS}}
            return {"none": list(none), "state": [h.detach(), c.detach()], "grads": grads}
        return student.call(run)

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("cell_atol"), ctx.threshold("cell_rtol")
        weights = inputs["weights"]
        H, size = weights["weight_hh"].shape[1], weights["weight_ih"].shape[1]
        B = inputs["x"].shape[0]
        label = f"LSTMCell({size}, {H}) with the grader's weights (float64), x {(B, size)}"
        value = value_of(got, label)
        right = oracle_cell(weights, *(inputs[key] for key in ("x", "h0", "c0", "dh", "dc")))
        outputs = {}
        for case, what in (("state", "given (h0, c0)"), ("none", "state=None")):
            for index, name in enumerate("hc"):
                outputs[f"{name} ({what})"] = (value[case][index], right[case][index])
        for what, (mine, _) in outputs.items():
            require_tensor(mine, f"{what} of {label}", shape=(B, H))
            require_finite(mine, f"{what} of {label}")
        errors = {what: max_abs_error(mine, theirs) for what, (mine, theirs) in outputs.items()}
        if not all(within_tolerance(mine, theirs, atol, rtol) for mine, theirs in outputs.values()):
            report = ", ".join(f"{what} {error:.3g}" for what, error in errors.items())
            raise Mismatch(f"{label}: differs from torch.nn.LSTMCell loaded with the same weights: max abs "
                           f"error {report}{self.hint(inputs, value, atol, rtol)}",
                           expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|", got=f"max abs error {report}")
        grads = value["grads"]
        missing = [name for name in right["grads"] if grads.get(name) is None]
        if missing:
            raise Mismatch(f"{label}: no gradient reached {', '.join(missing)} after backward(): every parameter and "
                           "input should take part in the computation, without .detach(), .data or torch.no_grad()",
                           expected="a gradient for x, h0, c0 and the four parameters",
                           got=f"None for {', '.join(missing)}")
        grad_errors = {}
        for name, theirs in right["grads"].items():
            mine = require_tensor(grads[name], f"the gradient of {name}", shape=tuple(theirs.shape))
            grad_errors[name] = max_abs_error(mine, theirs) if torch.isfinite(mine).all() else float("inf")
        wrong = [name for name, theirs in right["grads"].items() if not within_tolerance(grads[name], theirs, atol, rtol)]
        if wrong:
            report = ", ".join(f"{name} {error:.3g}" for name, error in grad_errors.items())
            raise Mismatch(f"{label}: h and c are right but the gradients of sum(h * dh) + sum(c * dc) differ from "
                           f"torch.nn.LSTMCell's for {', '.join(wrong)}: max abs error {report}. Look for a "
                           ".detach(), .data, an in-place change of a tensor autograd needs, or a gradient edited by "
                           "hand", expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|", got=f"max abs error {report}")
        worst = max(max(errors.values()), max(grad_errors.values()))
        return Verdict.ok(f"h and c (with state=None and with a given state) and the gradients of the input, both "
                          f"states and weight_ih, weight_hh, bias_ih, bias_hh match torch.nn.LSTMCell "
                          f"(max abs error {worst:.2g}, float64)")

    @staticmethod
    def hint(inputs: dict, value: dict, atol: float, rtol: float) -> str:
        weights = inputs["weights"]
        x, h0, c0 = inputs["x"], inputs["h0"], inputs["c0"]
        h, c = value["state"]
        right_h, right_c = mistaken_step(weights, x, h0, c0, "none")
        if within_tolerance(h, right_h, atol, rtol) and within_tolerance(c, right_c, atol, rtol):
            return ("; with a given state you are right, so look at state=None: it means h and c are zeros of "
                    "shape (B, H), with x's dtype and device")
        for mistake in CELL_MISTAKES:
            mistaken_h, mistaken_c = mistaken_step(weights, x, h0, c0, mistake)
            if within_tolerance(h, mistaken_h, 1e-6, 1e-5) and within_tolerance(c, mistaken_c, 1e-6, 1e-5):
                order = " (PyTorch stacks the rows as i, f, g, o)" if mistake.startswith("gates") else ""
                return f"; your h and c are what you get with {mistake}{order}"
        if within_tolerance(c, right_c, atol, rtol):
            return ("; the new cell state c is right, so look at h' = o * tanh(c'): the output gate o = "
                    "sigmoid(rows 3H..4H) and the tanh of the new cell")
        return ("; c is wrong too: check gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh, the rows "
                "of each gate (i, f, g, o in blocks of H), sigmoid for i, f, o and tanh for g, and "
                "c' = f * c + i * g")


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"
