"""Visible checks of the `lstm_lm` assignment (these also ship to students).

Each check: ``inputs`` (grader, seeded) -> ``probe`` (worker, calls the student) ->
``verdict`` (grader). No check needs the reference solution. The cell is compared with an
oracle the verdict runs itself (``torch.nn.LSTMCell`` in float64, loaded with the grader's
weights: it never runs next to the student's code); the language models are tested for
properties (shapes, normalised log-probabilities, state carried, causality); the decoding
functions and ``perplexity`` receive a grader-made model with known log-probabilities
(:class:`autograder.toolkit.sampling.KnownLogitsModel`), so the right answer is known exactly or, for
sampling, tested statistically.
"""

from __future__ import annotations

import itertools
import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict, derive_seed
from autograder.toolkit.probe import ContractError, build_module
from autograder.toolkit.sampling import (
    KnownLogitsModel,
    argmax_path,
    random_table,
    require_sampled_from,
    temperature_probs,
    transition_counts,
)
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_distributions,
    require_finite,
    require_tensor,
    unpack,
    value_of,
    within_tolerance,
)

LSTM, SCRATCH, ATTENTION = "LSTMLanguageModel", "ScratchLSTMLanguageModel", "AttentionLSTMLanguageModel"
PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
GATES = "ifgo"  # PyTorch's order of the four blocks of rows


# ---- probe side: calling the student's code --------------------------------------------

def pair(value, what: str):
    """The two items of a tuple a forward must return."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        kind = f"a {type(value).__name__}" if not isinstance(value, torch.Tensor) else f"one tensor {tuple(value.shape)}"
        raise ContractError(f"{what} should return a tuple of 2 items", expected="a tuple of 2 items", got=kind)
    return value


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


def id_list(value, what: str) -> list[int]:
    """A returned sequence of ids as a list of ints, or Mismatch saying what came back."""
    if isinstance(value, torch.Tensor):
        raise Mismatch(f"{what} should return a Python list of ints, not a tensor (use .tolist())",
                       expected="a list of ints", got=describe(value))
    if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        shown = next((describe(item) for item in value if not isinstance(item, int)), "") if isinstance(value, list) else ""
        raise Mismatch(f"{what} should return a list of ints (convert each id with int(...))",
                       expected="a list of ints", got=f"{describe(value)}" + (f" holding {shown}" if shown else ""))
    return value


# ---- LSTMCell against torch.nn.LSTMCell ------------------------------------------------

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


# ---- language models: shapes, normalisation, state, context ----------------------------

VOCAB, EMBED, HIDDEN = 13, 8, 16
MODEL_CASES = {  # label: (class name, constructor arguments)
    f"{LSTM}({VOCAB}, {EMBED}, {HIDDEN})": (LSTM, (VOCAB, EMBED, HIDDEN)),
    f"{LSTM}({VOCAB}, {EMBED}, {HIDDEN}, num_layers=2)": (LSTM, (VOCAB, EMBED, HIDDEN, 2)),
    f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})": (SCRATCH, (VOCAB, EMBED, HIDDEN)),
    f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})": (ATTENTION, (VOCAB, EMBED, HIDDEN)),
}


def run_model(student, device: str, case: str, *calls):
    """Build one model of MODEL_CASES (eval mode) and return its forward on each call's arguments."""
    name, args = MODEL_CASES[case]
    model = build_module(student, device, name, *args).eval()
    with torch.no_grad():
        return [pair(model(*call), f"{name}.forward") for call in calls]


def tokens(generator, batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=generator)


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


def per_model(cases: list[str], judge, success: str) -> Verdict:
    """Partial credit per model: ``judge(case)`` raises Mismatch for a model that is wrong."""
    problems = []
    for case in cases:
        try:
            judge(case)
        except Mismatch as failure:
            problems.append(failure)
    if not problems:
        return Verdict.ok(success)
    first, right = problems[0], len(cases) - len(problems)
    return Verdict.partial(right, len(cases), f"{right} of {len(cases)} models right; first problem: {first.message}",
                           expected=first.expected, got=first.got)

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

class ScratchUsesContext(Check):
    """Changing token k changes the log-probabilities after it and none before it."""

    name = "scratch_uses_context"
    needs_reference = False
    CHANGED = 2

    def inputs(self, ctx):
        x = tokens(ctx.generator(), 2, 8)
        changed = x.clone()
        changed[:, self.CHANGED] = (x[:, self.CHANGED] + 1) % VOCAB
        return {"x": x, "changed": changed}

    @staticmethod
    def probe(student, inputs, device):
        case = f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})"
        outputs = run_model(student, device, case, (inputs["x"],), (inputs["changed"],))
        return [output[0] for output in outputs]

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        k, label = self.CHANGED, f"{SCRATCH}({VOCAB}, {EMBED}, {HIDDEN})"
        plain, changed = (require_tensor(value, f"log_probs of {label}", shape=(B, T, VOCAB)) for value in got)
        difference = (plain.to(torch.float64) - changed.to(torch.float64)).abs().amax(dim=(0, 2))  # per position
        shown = ", ".join(f"{d:.2g}" for d in difference.tolist())
        if difference[:k].max() > ctx.threshold("state_atol"):
            raise Mismatch(f"{label}: changing token {k} changed the log_probs of earlier positions: position t must "
                           "depend only on tokens 0..t", expected=f"no change before position {k}",
                           got=f"changes per position {shown}")
        if difference[k + 1] <= ctx.threshold("context_min_change"):
            raise Mismatch(f"{label}: changing token {k} leaves the log_probs of position {k + 1} unchanged (token "
                           f"{k + 1} is the same), so the model does not use its context: carry (h, c) from each step "
                           "to the next instead of starting every step from zeros",
                           expected=f"a change at position {k + 1}", got=f"changes per position {shown}")
        return Verdict.ok(f"changing token {k} changes the log_probs after it ({difference[k + 1].item():.2g} at "
                          f"position {k + 1}) and none before it")


class AttentionCausal(Check):
    """Weights (B, T, T) are distributions with zeros after the diagonal, and changing the
    tokens after position t changes neither log_probs[:, :t+1] nor weights[:, :t+1]."""

    name = "attention_causal"
    needs_reference = False
    CUTS = (0, 3, 6)

    def inputs(self, ctx):
        generator = ctx.generator()
        x = tokens(generator, 2, 9)
        variants = []
        for t in self.CUTS:
            changed = x.clone()
            changed[:, t + 1:] = (x[:, t + 1:] + torch.randint(1, VOCAB, x[:, t + 1:].shape, generator=generator)) % VOCAB
            variants.append(changed)
        return {"x": x, "variants": variants}

    @staticmethod
    def probe(student, inputs, device):
        case = f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})"
        return run_model(student, device, case, (inputs["x"],), *((v,) for v in inputs["variants"]))

    def verdict(self, ctx, inputs, got, expected):
        B, T = inputs["x"].shape
        label = f"{ATTENTION}({VOCAB}, {EMBED}, {HIDDEN})"
        atol = ctx.threshold("state_atol")
        outputs = []
        for log_probs, weights in (unpack(value, 2, f"{label}.forward") for value in got):
            require_tensor(log_probs, f"log_probs of {label}", shape=(B, T, VOCAB))
            require_distributions(weights, f"attention weights of {label}", shape=(B, T, T))
            outputs.append((log_probs, weights))
        log_probs, weights = outputs[0]
        future = weights.to(torch.float64).triu(diagonal=1)
        if future.abs().max() > atol:
            b, row, col = (int(i) for i in (future.abs() == future.abs().max()).nonzero()[0])
            raise Mismatch(f"{label}: step {row} attends to position {col}, which comes after it: mask the scores of "
                           "positions j > t with -inf before the softmax (row t of the weights must be zero after "
                           "column t)", expected="weights[:, t, j] = 0 for j > t",
                           got=f"weights[{b}, {row}, {col}] = {weights[b, row, col].item():.3g}")
        for t, (changed_log_probs, changed_weights) in zip(self.CUTS, outputs[1:], strict=True):
            for what, mine, theirs in (("log_probs", changed_log_probs, log_probs),
                                       ("weights", changed_weights, weights)):
                if not within_tolerance(mine[:, :t + 1], theirs[:, :t + 1], atol, 0.0):
                    raise Mismatch(f"{label}: changing the tokens after position {t} changed {what}[:, :{t + 1}]: the "
                                   f"output at step t may only depend on tokens 0..t (does the encoder or the "
                                   "decoder read ahead?)", expected=f"the same {what}[:, :{t + 1}]",
                                   got=f"max abs difference {max_abs_error(mine[:, :t + 1], theirs[:, :t + 1]):.3g}")
        return Verdict.ok(f"weights {(B, T, T)} are distributions with zeros after the diagonal, and changing the "
                          f"tokens after positions {', '.join(map(str, self.CUTS))} changes nothing up to them")


# ---- decoding and perplexity with a model of known log-probabilities -------------------

def distinct_table(vocab_size: int, generator, spread: float, gap: float = 1e-3) -> torch.Tensor:
    """random_table whose rows have a clear argmax (no near-ties for greedy decoding)."""
    while True:
        table = random_table(vocab_size, generator, spread=spread)
        top = table.topk(2, dim=-1).values
        if (top[:, 0] - top[:, 1]).min() > gap:
            return table


def known_model(table: torch.Tensor) -> KnownLogitsModel:
    """The grader-made model: log-probabilities log_softmax(table[x]), kept on the CPU."""
    return KnownLogitsModel(table, log_probs=True)


class GreedyGenerate(Check):
    """greedy_generate on a model whose log-probabilities are known equals the argmax path, and
    gives the same ids after the global random seed changes."""

    name = "greedy_generate"
    needs_reference = False
    CASES = [([3], 12), ([0, 5, 2], 9)]

    def inputs(self, ctx):
        return {"table": distinct_table(7, ctx.generator(), spread=2.0), "cases": self.CASES}

    @staticmethod
    def probe(student, inputs, device):
        model, runs = known_model(inputs["table"]), []
        for prefix, length in inputs["cases"]:
            for seed in (1, 2):
                torch.manual_seed(seed)
                runs.append(student.attempt("greedy_generate", model, list(prefix), length))
        return runs

    def verdict(self, ctx, inputs, got, expected):
        table = inputs["table"]
        for index, (prefix, length) in enumerate(inputs["cases"]):
            call = f"greedy_generate(model, {prefix}, {length})"
            first, second = (id_list(value_of(record, call), call) for record in got[2 * index:2 * index + 2])
            right = argmax_path(table, prefix, length)
            require_ids(first, prefix, length, table.shape[0], call)
            if first != right:
                step = next(i for i, (a, b) in enumerate(zip(first, right, strict=True)) if a != b)
                raise Mismatch(f"{call} on a model whose log-probabilities are known does not follow the most likely "
                               f"id: id {step} (after {first[step - 1]}) should be the argmax of the last position's "
                               "log-probabilities", expected=str(right), got=str(first))
            if second != first:
                raise Mismatch(f"{call} gave different ids after torch.manual_seed changed: greedy decoding must not "
                               "draw at random", expected=str(first), got=str(second))
        return Verdict.ok(f"{len(inputs['cases'])} prefixes: the ids follow the argmax of the known log-probabilities "
                          "and do not depend on the random seed")


def require_ids(ids: list[int], prefix: list[int], length: int, vocab_size: int, call: str) -> None:
    """prefix followed by `length` ids in range."""
    if len(ids) != len(prefix) + length or ids[:len(prefix)] != list(prefix):
        raise Mismatch(f"{call} should return prefix_ids followed by {length} new ids",
                       expected=f"{len(prefix) + length} ids starting with {prefix}",
                       got=f"{len(ids)} ids starting with {ids[:len(prefix)]}")
    if any(not 0 <= i < vocab_size for i in ids):
        raise Mismatch(f"{call} returned ids outside the vocabulary", expected=f"ids in 0..{vocab_size - 1}",
                       got=str(sorted(set(i for i in ids if not 0 <= i < vocab_size))[:8]))


class SampleGenerate(Check):
    """sample_generate on a model with known log-probabilities: at each temperature T the
    transitions drawn must follow softmax(log_probs / T) (Pearson's chi-square per previous id,
    false-alarm rate alpha per temperature); the same generator seed gives the same ids."""

    name = "sample_generate"
    needs_reference = False
    PREFIX, VOCAB, SPREAD = [2, 4], 6, 1.5  # logits uniform in [-1.5, 1.5] over 6 ids

    def inputs(self, ctx):
        table = random_table(self.VOCAB, ctx.generator(), spread=self.SPREAD)
        temperatures = [0.5, 1.0, 2.0]
        return {"table": table, "prefix": self.PREFIX, "length": ctx.budget("sampling_draws"),
                "temperatures": temperatures,
                "seeds": [derive_seed(ctx.seed, self.name, str(t)) for t in temperatures],
                "repeat_seed": derive_seed(ctx.seed, self.name, "repeat")}

    @staticmethod
    def probe(student, inputs, device):
        model, prefix = known_model(inputs["table"]), list(inputs["prefix"])
        draws = [student.attempt("sample_generate", model, list(prefix), inputs["length"], temperature=temperature,
                                 generator=torch.Generator().manual_seed(seed))
                 for temperature, seed in zip(inputs["temperatures"], inputs["seeds"], strict=True)]
        repeats = [student.attempt("sample_generate", model, list(prefix), 30, temperature=1.0,
                                   generator=torch.Generator().manual_seed(inputs["repeat_seed"])) for _ in range(2)]
        return {"draws": draws, "repeats": repeats}

    def verdict(self, ctx, inputs, got, expected):
        table, prefix, length = inputs["table"], inputs["prefix"], inputs["length"]
        vocab_size, alpha = table.shape[0], ctx.threshold("sampling_alpha")
        p_values = []
        for temperature, record in zip(inputs["temperatures"], got["draws"], strict=True):
            call = f"sample_generate(model, {prefix}, {length}, temperature={temperature:g}, generator=...)"
            ids = id_list(value_of(record, call), call)
            require_ids(ids, prefix, length, vocab_size, call)
            counts = transition_counts(ids, vocab_size, first=len(prefix))
            alternatives = {"softmax(log_probs * T) (the temperature multiplying, not dividing)":
                            temperature_probs(table, 1 / temperature),
                            "softmax(log_probs) (the temperature ignored)": temperature_probs(table, 1.0),
                            "the argmax (greedy decoding, no sampling)": temperature_probs(table, 1e-6)}
            if temperature == 1.0:
                alternatives = {what: probs for what, probs in alternatives.items() if what.startswith("the argmax")}
            fit = require_sampled_from(counts, temperature_probs(table, temperature),
                                       f"{call} on a model with known log-probabilities", alpha=alpha,
                                       alternatives=alternatives)
            p_values.append(f"T={temperature:g}: p = {fit.p_value:.2g}")
        call = "sample_generate(model, prefix, 30, generator=torch.Generator().manual_seed(s))"
        first, second = (id_list(value_of(record, call), call) for record in got["repeats"])
        if first != second:
            raise Mismatch(f"{call} twice with the same seed gave different ids: draw with "
                           "torch.multinomial(probs, 1, generator=generator) so that the generator decides",
                           expected=str(first), got=str(second))
        return Verdict.ok(f"{length} draws at each temperature follow softmax(log_probs / T) (chi-square test, "
                          f"false-alarm rate {alpha:g} per temperature; {', '.join(p_values)}); the prefix comes first "
                          "and the same generator seed gives the same ids")


def chain(table: torch.Tensor, length: int, generator) -> torch.Tensor:
    """(length,) ids: a Markov chain drawn from the known model's own distribution."""
    probs = temperature_probs(table, 1.0)
    ids = [int(torch.randint(0, table.shape[0], (1,), generator=generator))]
    for _ in range(length - 1):
        ids.append(int(torch.multinomial(probs[ids[-1]], 1, generator=generator)))
    return torch.tensor(ids)


def known_perplexity(table: torch.Tensor, ids: torch.Tensor) -> float:
    """exp(mean -ln p(ids[t+1] | ids[t])) under the known model, float64."""
    log_probs = torch.log_softmax(table.to(torch.float64), dim=-1)
    return math.exp(-log_probs[ids[:-1], ids[1:]].mean().item())


PERPLEXITY_MISTAKES = {  # what the student computed, from the right perplexity p
    "log base 2 for the negative log-likelihood, then exp": lambda p: p ** (1 / math.log(2)),
    "2 ** (mean natural-log NLL)": lambda p: p ** math.log(2),
    "the mean negative log-likelihood, without exp": math.log,
    "exp of the mean log-likelihood (the sign flipped)": lambda p: 1 / p,
}


class Perplexity(Check):
    """perplexity(model, ids, seq_len) on a model with known log-probabilities: the grader
    knows exp(mean NLL) exactly; other sensible chunkings are accepted within a relative
    tolerance."""

    name = "perplexity"
    needs_reference = False
    CASES = [(401, 25), (300, 40), (120, 200)]  # (len(ids), seq_len)

    def inputs(self, ctx):
        generator = ctx.generator()
        table = random_table(9, generator, spread=2.0)
        return {"table": table, "cases": [{"ids": chain(table, n, generator), "seq_len": seq_len}
                                          for n, seq_len in self.CASES]}

    @staticmethod
    def probe(student, inputs, device):
        model = known_model(inputs["table"])
        return [student.attempt("perplexity", model, case["ids"].clone(), case["seq_len"]) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rtol = ctx.threshold("perplexity_rtol")
        shown = []
        for case, record in zip(inputs["cases"], got, strict=True):
            ids, seq_len = case["ids"], case["seq_len"]
            call = f"perplexity(model, ids of length {len(ids)}, seq_len={seq_len})"
            value = value_of(record, call)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise Mismatch(f"{call} should return a finite float", expected="a float", got=describe(value))
            right = known_perplexity(inputs["table"], ids)
            if abs(value - right) > rtol * right:
                hint = next((f"; your value is what {what} gives" for what, wrong in PERPLEXITY_MISTAKES.items()
                             if abs(value - wrong(right)) <= rtol * abs(wrong(right))), "")
                if not hint and value > right ** 5:
                    hint = "; did you sum the negative log-likelihoods instead of averaging them?"
                raise Mismatch(f"{call} on a model with known log-probabilities is off by more than {rtol:.0%}: "
                               "perplexity is exp of the mean negative log-likelihood (natural log) of each next "
                               f"id{hint}", expected=f"{right:.4f} (within {rtol:.0%})", got=f"{value:.4f}")
            shown.append(f"{value:.3f} (exactly {right:.3f})")
        return Verdict.ok(f"{len(shown)} sequences: {', '.join(shown)}, within {rtol:.0%}")
