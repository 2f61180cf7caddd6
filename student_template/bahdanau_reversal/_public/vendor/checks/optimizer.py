"""The hand-written optimisation pieces: `adam_matches_pytorch` runs the student's
AdamOptimizer and torch.optim.Adam (in the verdict) on the same parameters and gradients, step
by step, and names the usual Adam mistakes when they differ; `clip_gradients` compares
clip_gradients with torch.nn.utils.clip_grad_norm_ (total norm and clipped gradients);
`from_scratch` is the static check that neither uses the PyTorch versions.
"""

from __future__ import annotations

import math

import torch

from autograder.sandbox.wire import describe
from autograder.toolkit.check import Check, NoForbiddenCalls, Verdict
from autograder.toolkit.probe import plain_number
from autograder.toolkit.verdict import (
    Mismatch,
    max_abs_error,
    require_tensor,
    value_of,
    within_tolerance,
)

# ---- AdamOptimizer against torch.optim.Adam ---------------------------------------------

ADAM_SHAPES = [(4, 3), (5,), (2, 2, 2), (3,)]  # the last parameter never gets a gradient
ADAM_CASES = [  # (label, keyword arguments or None for the defaults, steps, pass a generator)
    ("AdamOptimizer([params]) with the defaults", None, 5, False),
    ("AdamOptimizer(model.parameters(), lr=0.05, betas=(0.8, 0.9), eps=1e-3)",
     {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-3}, 6, True),
]
DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}


def adam_history(init: list, grads: list, lr: float, betas: tuple, eps: float, mistake: str | None = None) -> list:
    """The parameters after every step (float64): torch.optim.Adam when ``mistake`` is None
    (run here, in the grading process), else Adam as a common mistake computes it."""
    params = [torch.nn.Parameter(t.clone().to(torch.float64)) for t in init]
    if mistake is None:
        optimizer = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
    beta1, beta2 = betas
    moments = [[torch.zeros_like(p), torch.zeros_like(p)] for p in params]
    history = []
    for t, step_grads in enumerate(grads, start=1):
        for p, g in zip(params, step_grads, strict=True):
            p.grad = None if g is None else g.clone().to(torch.float64)
        if mistake is None:
            optimizer.step()
        else:
            with torch.no_grad():
                for p, (m, v) in zip(params, moments, strict=True):
                    if p.grad is None:
                        continue
                    b1, b2 = (beta2, beta1) if mistake == "betas read the wrong way round (b1 for v, b2 for m)" \
                        else (beta1, beta2)
                    m.mul_(b1).add_(p.grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    m_hat = m if mistake in ("no bias correction", "bias correction of v only") else m / (1 - b1 ** t)
                    v_hat = v if mistake in ("no bias correction", "bias correction of m only") else v / (1 - b2 ** t)
                    denominator = (v_hat + eps).sqrt() if mistake.startswith("eps inside") else v_hat.sqrt() + eps
                    p.sub_(lr * m_hat / denominator)
        history.append([p.detach().clone() for p in params])
    return history


ADAM_MISTAKES = ("no bias correction", "bias correction of m only", "bias correction of v only",
                 "eps inside the square root, sqrt(v^ + eps)", "betas read the wrong way round (b1 for v, b2 for m)")


class AdamMatchesPytorch(Check):
    """The student's AdamOptimizer and torch.optim.Adam (run by the verdict) start from the same
    float64 parameters and receive the same gradients, several steps in a row (the grader sets
    each .grad, then calls step()); the parameters must agree after every step. One parameter
    never has a gradient and must not move; after zero_grad() every gradient is None or zero.
    The second case passes a generator, as model.parameters() is, with non-default lr, betas, eps."""

    name = "adam_matches_pytorch"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for label, kwargs, steps, as_generator in ADAM_CASES:
            init = [torch.randn(*shape, generator=generator, dtype=torch.float64) for shape in ADAM_SHAPES]
            grads = []
            for _ in range(steps):
                scale = 10 ** (torch.rand((), generator=generator, dtype=torch.float64) * 3 - 2)  # 0.01 .. 10
                grads.append([torch.randn(*shape, generator=generator, dtype=torch.float64) * scale
                              for shape in ADAM_SHAPES[:-1]] + [None])
            cases.append({"label": label, "kwargs": kwargs, "init": init, "grads": grads, "as_generator": as_generator})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            params = [torch.nn.Parameter(t.clone()) for t in case["init"]]
            given = (p for p in params) if case["as_generator"] else list(params)
            kwargs = case["kwargs"] or {}
            if "betas" in kwargs:
                kwargs = {**kwargs, "betas": tuple(kwargs["betas"])}
            optimizer = student.AdamOptimizer(given, **kwargs)
            history = []
            for step_grads in case["grads"]:
                for p, g in zip(params, step_grads, strict=True):
                    p.grad = None if g is None else g.clone()
                optimizer.step()
                history.append([p.detach().clone() for p in params])
            for p, g in zip(params, case["grads"][-1], strict=True):
                p.grad = None if g is None else g.clone()
            optimizer.zero_grad()
            after = [None if p.grad is None else p.grad.detach().clone() for p in params]
            return {"history": history, "after_zero_grad": after}
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        atol, rtol = ctx.threshold("adam_atol"), ctx.threshold("adam_rtol")
        worst = 0.0
        for case, record in zip(inputs["cases"], got, strict=True):
            label = case["label"]
            value = value_of(record, label)
            settings = {**DEFAULTS, **(case["kwargs"] or {})}
            settings["betas"] = tuple(settings["betas"])
            right = adam_history(case["init"], case["grads"], **settings)
            history = value["history"]
            for step, (mine, theirs) in enumerate(zip(history, right, strict=True), start=1):
                for index, (p, q) in enumerate(zip(mine, theirs, strict=True)):
                    what = f"{label}: parameter {index} {tuple(q.shape)} after step {step}"
                    require_tensor(p, what, shape=tuple(q.shape))
                    if index == len(ADAM_SHAPES) - 1:
                        if not torch.equal(p.to(torch.float64), case["init"][index]):
                            raise Mismatch(f"{label}: parameter {index} never has a gradient (.grad is None) and must "
                                           f"not move, but it changed at step {step}: skip parameters whose grad is "
                                           "None", expected="unchanged",
                                           got=f"max change {max_abs_error(p, case['init'][index]):.3g}")
                        continue
                    if not within_tolerance(p, q, atol, rtol):
                        raise Mismatch(f"{what} differs from torch.optim.Adam's with the same gradients: max abs error "
                                       f"{max_abs_error(p, q):.3g}{self.hint(case, settings, history, atol, rtol)}",
                                       expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                                       got=f"max abs error {max_abs_error(p, q):.3g}")
                    worst = max(worst, max_abs_error(p, q))
            leftover = [index for index, grad in enumerate(value["after_zero_grad"])
                        if grad is not None and (not isinstance(grad, torch.Tensor) or grad.abs().max() != 0)]
            if leftover:
                raise Mismatch(f"{label}: after zero_grad() the gradients should be None (or zeros)",
                               expected="every .grad None or zero", got=f"non-zero .grad on parameters {leftover}")
        return Verdict.ok(f"{len(inputs['cases'])} cases ({', '.join(c['label'] for c in inputs['cases'])}): the "
                          f"parameters match torch.optim.Adam after every step (max abs error {worst:.2g}, float64); a "
                          "parameter without gradient stays put; zero_grad clears the gradients")

    @staticmethod
    def hint(case: dict, settings: dict, history: list, atol: float, rtol: float) -> str:
        if all(torch.equal(p.to(torch.float64), q) for mine in history for p, q in zip(mine, case["init"], strict=True)):
            return ("; step() changed no parameter at all" + (
                ". AdamOptimizer(model.parameters()) receives a generator, which is empty after one pass (e.g. the "
                "one that creates m and v): keep self.params = list(params)" if case["as_generator"] else ""))
        for mistake in ADAM_MISTAKES:
            wrong = adam_history(case["init"], case["grads"], mistake=mistake, **settings)
            if all(within_tolerance(p, q, atol * 10, rtol * 10) for mine, theirs in zip(history, wrong, strict=True)
                   for p, q in zip(mine[:-1], theirs[:-1], strict=True)):
                return f"; your parameters are what Adam gives with {mistake}"
        return ("; check m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g², the bias corrections m / (1 - b1^t) and "
                "v / (1 - b2^t) with t counting the steps from 1, and p -= lr m^ / (sqrt(v^) + eps)")


# ---- clip_gradients against clip_grad_norm_ ---------------------------------------------

CLIP_SHAPES = [(3, 4), (5,), (2, 3), (4,), (2,)]  # the last parameter has no gradient
CLIP_CASES = [  # (gradient norm of each parameter, max_norm or None for the default, how it is called)
    ([0.6, 0.5, 0.7, 0.4], None, "list"),          # total 1.12 > 1: clipped, though no parameter alone is
    ([2.0, 1.5, 1.0, 2.5], 5.0, "list"),           # total 3.67 < 5: left alone
    ([0.3, 0.9, 0.2, 0.6], 0.5, "generator"),      # model.parameters() is a generator
]


def clip_call(norms_case) -> str:
    _, max_norm, how = norms_case
    given = "model.parameters()" if how == "generator" else "[params]"
    return f"clip_gradients({given}{'' if max_norm is None else f', max_norm={max_norm:g}'})"


class ClipGradients(Check):
    """Five parameters (one without a gradient); the student's clip_gradients and
    torch.nn.utils.clip_grad_norm_ (run by the verdict) on the same float64 gradients: the
    returned total norm and every clipped gradient must agree. Each parameter's own norm is
    below max_norm in the first case, so clipping each parameter separately changes nothing
    there and fails."""

    name = "clip_gradients"
    needs_reference = False

    def inputs(self, ctx):
        generator = ctx.generator()
        cases = []
        for norms, max_norm, how in CLIP_CASES:
            grads = []
            for shape, norm in zip(CLIP_SHAPES, norms, strict=False):
                g = torch.randn(*shape, generator=generator, dtype=torch.float64)
                grads.append(g * norm / g.norm())
            cases.append({"grads": grads + [None], "max_norm": max_norm, "how": how})
        return {"cases": cases}

    @staticmethod
    def probe(student, inputs, device):
        def run(case):
            params = [torch.nn.Parameter(torch.zeros(*shape, dtype=torch.float64, device=device))
                      for shape in CLIP_SHAPES]
            for p, g in zip(params, case["grads"], strict=True):
                p.grad = None if g is None else g.clone()
            given = (p for p in params) if case["how"] == "generator" else list(params)
            if case["max_norm"] is None:
                total = student.clip_gradients(given)
            else:
                total = student.clip_gradients(given, max_norm=case["max_norm"])
            return {"total": plain_number(total), "grads": [None if p.grad is None else p.grad.detach().clone()
                                                      for p in params]}
        return [student.call(run, case) for case in inputs["cases"]]

    def verdict(self, ctx, inputs, got, expected):
        rtol, atol = ctx.threshold("clip_rtol"), ctx.threshold("clip_atol")
        shown = []
        for spec_case, case, record in zip(CLIP_CASES, inputs["cases"], got, strict=True):
            call = clip_call(spec_case)
            value = value_of(record, call)
            max_norm = 1.0 if case["max_norm"] is None else case["max_norm"]
            params = [torch.nn.Parameter(torch.zeros(*shape, dtype=torch.float64)) for shape in CLIP_SHAPES]
            for p, g in zip(params, case["grads"], strict=True):
                p.grad = None if g is None else g.clone()
            right_total = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
            total = value["total"]
            if isinstance(total, bool) or not isinstance(total, (int, float)):
                raise Mismatch(f"{call} should return the total norm (a float or a one-element tensor)",
                               expected=f"{right_total:.6g}", got=describe(total))
            if not math.isclose(total, right_total, rel_tol=rtol):
                hint = ""
                if math.isclose(total, right_total ** 2, rel_tol=rtol):
                    hint = ": that is the squared norm (take the square root of the sum of squares)"
                elif math.isclose(total, min(right_total, max_norm), rel_tol=rtol) and right_total > max_norm:
                    hint = ": that is the norm after clipping; return the norm before"
                raise Mismatch(f"{call} returned the wrong total norm{hint}; the total norm is the L2 norm of all "
                               "gradients together, sqrt(sum over parameters of sum(g²))",
                               expected=f"{right_total:.6g}", got=f"{total:.6g}")
            grads = value["grads"]
            for index, (mine, theirs) in enumerate(zip(grads, (p.grad for p in params), strict=True)):
                if theirs is None:
                    if mine is not None:
                        raise Mismatch(f"{call}: parameter {index} has no gradient and should keep .grad None",
                                       expected="None", got=describe(mine))
                    continue
                require_tensor(mine, f"{call}: the gradient of parameter {index}", shape=tuple(theirs.shape))
                if not within_tolerance(mine, theirs, atol, rtol):
                    raise Mismatch(f"{call}: the gradient of parameter {index} differs from clip_grad_norm_'s"
                                   f"{self.hint(case, grads, right_total, max_norm)}",
                                   expected=f"max abs error <= {atol:g} + {rtol:g}·|expected|",
                                   got=f"max abs error {max_abs_error(mine, theirs):.3g}")
            shown.append(f"total {right_total:.3f} with max_norm {max_norm:g} ({'clipped' if right_total > max_norm else 'left alone'})")
        return Verdict.ok(f"{len(shown)} cases: {'; '.join(shown)}; the returned norm and every gradient match "
                          "clip_grad_norm_")

    @staticmethod
    def hint(case: dict, grads: list, total: float, max_norm: float) -> str:
        given = [g for g in case["grads"] if g is not None]
        mine = [g for g in grads if g is not None]
        if all(torch.allclose(a, b) for a, b in zip(mine, given, strict=True)):
            if case["how"] == "generator":
                return (": nothing was clipped, though the total norm is above max_norm. `parameters` may be a "
                        "generator (model.parameters()), which is empty after the first pass: make a list first")
            return (f": nothing was clipped, though the total norm of all gradients together ({total:.4g}) is above "
                    f"max_norm ({max_norm:g}). Each parameter's own norm is below max_norm here, so clipping the "
                    "parameters one by one changes nothing: scale all gradients by the same factor "
                    "max_norm / (total_norm + 1e-6)")
        separately = [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in given]
        if all(torch.allclose(a, b) for a, b in zip(mine, separately, strict=True)):
            return (": you clipped each parameter by its own norm; scale all gradients by the same factor "
                    "max_norm / total_norm")
        if total <= max_norm:
            return ": the total norm is below max_norm, so the gradients should be left unchanged"
        return ": multiply every gradient by max_norm / (total_norm + 1e-6) when that is below 1"


class FromScratch(NoForbiddenCalls):
    name = "from_scratch"
