"""Stage 4, verdict: decide each check in the grading process from the probe's plain data.

``judge`` turns a probe result into a :class:`~autograder.toolkit.check.Verdict`: a failed probe
becomes a message naming the exception and the student's line; otherwise the check's own
``verdict`` compares what came back with the reference. Check code uses the ``require_*``
helpers, which raise :class:`Mismatch` with an expected-vs-got message on the first problem.
"""

from __future__ import annotations

import traceback

import torch

from autograder.sandbox.wire import Opaque, describe
from autograder.spec import SpecError
from autograder.toolkit.check import Check, CheckContext, StaticCheck, Verdict


class Mismatch(Exception):
    """Raised by verdict code: the check fails with this message."""

    def __init__(self, message: str, *, expected: str | None = None, got: str | None = None):
        super().__init__(message)
        self.message, self.expected, self.got = message, expected, got


def judge(check: Check, ctx: CheckContext, inputs: dict, probe: dict, expected: dict | None) -> Verdict:
    if not probe.get("ok"):
        return verdict_from_error(probe.get("error") or {})
    try:
        return check.verdict(ctx, inputs, probe.get("value"), expected["value"] if expected else None)
    except Mismatch as failure:
        return Verdict.fail(failure.message, expected=failure.expected, got=failure.got)
    except SpecError:
        raise  # the assignment's own mistake (e.g. a missing threshold), never the student's
    except Exception as error:  # the submission returned something the check did not foresee
        return Verdict.fail(
            f"the grader could not interpret what your code returned ({type(error).__name__}: {error}); "
            "check the return types against the handout",
            details="".join(traceback.format_exception(type(error), error, error.__traceback__)))


def decide(checks: dict[str, Check], contexts: dict[str, CheckContext], inputs: dict, probes: dict,
           expected: dict, analysis, blocker: str | None) -> dict[str, Verdict]:
    """Every check's verdict: static checks from the syntax tree (``analysis``; None when there
    was no source to read), the others from their probe, or "not run: <blocker>" when nothing
    could run. Shared by the grader and the public tests."""
    verdicts = {}
    for name, check in checks.items():
        if isinstance(check, StaticCheck) and analysis is not None:
            verdicts[name] = check.verdict_static(contexts[name], analysis)
        elif blocker is not None:
            verdicts[name] = Verdict.fail(f"not run: {blocker}")
        else:
            verdicts[name] = judge(check, contexts[name], inputs[name], probes[name], expected.get(name))
    return verdicts


def verdict_from_error(error: dict) -> Verdict:
    kind, message = error.get("type", "Error"), error.get("message", "")
    location = located(error.get("where"))
    hint = error.get("hint")
    if kind == "WorkerDied":
        text = hint or message
    elif hint:
        text = f"{hint} ({kind}{location})"
    else:
        text = f"your code raised {kind}: {message}{location}"
    return Verdict.fail(text, got=f"{kind}: {message}"[:500], details=error.get("traceback") or None)


def located(where: dict | None) -> str:
    """" at cell 4, line 3 in `f`: `code`" for an error's ``where`` record ('' without one)."""
    if not where or not where.get("code"):
        return ""
    at = where.get("at") or f"line {where['line']}"
    return f" at {at} in `{where['function']}`: `{where['code']}`"


# ---- helpers for check code -------------------------------------------------------------

def unpack(value, count: int, what: str) -> list:
    """``value`` must be a tuple/list of ``count`` items (tuples arrive as lists)."""
    if not isinstance(value, list) or len(value) != count:
        raise Mismatch(f"{what} should return a tuple of {count} items",
                       expected=f"a tuple of {count} items", got=describe(value))
    return value


def require_tensor(value, what: str, *, shape: tuple | None = None, dtype: torch.dtype | None = None):
    if isinstance(value, Opaque) or not isinstance(value, torch.Tensor):
        raise Mismatch(f"{what} should be a torch.Tensor", expected="a tensor", got=describe(value))
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Mismatch(f"{what} has the wrong shape", expected=f"shape {tuple(shape)}",
                       got=f"shape {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise Mismatch(f"{what} has the wrong dtype", expected=_dtype(dtype), got=_dtype(value.dtype))
    return value


def require_finite(value: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(value) if value.is_floating_point() else torch.zeros((), dtype=torch.bool)
    if bad.any():
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise Mismatch(f"{what} contains NaN or Inf ({int(bad.sum())} of {value.numel()} entries)",
                       expected="finite values", got=f"{value[index].item()} at index {index}")


def require_distributions(weights, what: str, *, shape: tuple | None = None, atol: float = 1e-5) -> torch.Tensor:
    """Attention-style weights: a finite tensor, non-negative, each row (last axis) summing to 1."""
    require_tensor(weights, what, shape=shape)
    require_finite(weights, what)
    if (weights < 0).any():
        raise Mismatch(f"{what} has negative entries; softmax weights lie in [0, 1]",
                       expected="weights >= 0", got=f"min weight {weights.min().item():.3g}")
    sums = weights.to(torch.float64).sum(-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=atol):
        raise Mismatch(f"the rows of {what} do not sum to 1; is the softmax taken over the last axis "
                       "(the keys)?", expected="every row sums to 1",
                       got=f"row sums range from {sums.min().item():.4g} to {sums.max().item():.4g}")
    return weights


def require_close(got, expected: torch.Tensor, what: str, *, atol: float, rtol: float) -> None:
    """Same shape, finite, and |got - expected| <= atol + rtol * |expected| everywhere."""
    require_tensor(got, what, shape=tuple(expected.shape))
    require_finite(got, what)
    got64, expected64 = got.to(torch.float64), expected.to(torch.float64)
    error = (got64 - expected64).abs()
    allowed = atol + rtol * expected64.abs()
    if (error > allowed).any():
        worst = _unravel(int((error - allowed).argmax()), error.shape)
        raise Mismatch(
            f"{what} differs from the reference: max abs error {error.max().item():.3g} "
            f"(tolerance {atol:g} + {rtol:g}·|expected|), worst at index {worst}",
            expected=f"{expected64[worst].item():.6g} at {worst}", got=f"{got64[worst].item():.6g}")


def within_tolerance(got: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> bool:
    """Same shape, finite, and |got - expected| <= atol + rtol * |expected| everywhere."""
    if tuple(got.shape) != tuple(expected.shape) or not torch.isfinite(got).all():
        return False
    got64, expected64 = got.to(torch.float64), expected.to(torch.float64)
    return bool(((got64 - expected64).abs() <= atol + rtol * expected64.abs()).all())


def value_of(record: dict, label: str):
    """The value of a ``student.attempt(...)`` / ``student.call(...)`` record, or a Mismatch
    saying what was raised and where (a probe's ContractError keeps its expected / got)."""
    if record.get("ok"):
        return record["value"]
    error = record["error"]
    if error["type"] == "ContractError" or error.get("expected") is not None:
        raise Mismatch(f"{label}: {error['message']}", expected=error.get("expected"), got=error.get("got"))
    hint = error.get("hint")
    said = f" ({error['type']}: {error['message']})" if hint != error["message"] else ""
    raise Mismatch(f"{label}: {hint or 'your code raised'}{said}{located(error.get('where'))}", got=error["type"])


def max_abs_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return (got.to(torch.float64) - expected.to(torch.float64)).abs().max().item() if got.numel() else 0.0


def _unravel(flat: int, shape) -> tuple[int, ...]:
    index = []
    for size in reversed(tuple(shape)):
        index.append(flat % size)
        flat //= size
    return tuple(reversed(index))


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
