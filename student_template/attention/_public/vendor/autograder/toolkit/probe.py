"""Stage 3, probe: run one check's probe against a module, seeded, capturing what happens.

Used in two places with the same code: inside the worker on the student's submission, and in
the grading process on the reference solution (which is trusted). The result is plain data::

    {"ok": True,  "value": ..., "stdout": "...", "seconds": 0.01}
    {"ok": False, "error": {"type", "message", "where", "traceback", "hint"}, "stdout", "seconds"}
"""

from __future__ import annotations

import contextlib
import errno
import io
import random
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from autograder.toolkit.check import derive_seed


class MissingName(AttributeError):
    """The submission does not define a name a probe asked for."""


class Submission:
    """Read-only view of the student's module that turns a missing name into a clear error."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        try:
            return getattr(self._module, name)
        except AttributeError:
            raise MissingName(f"your submission does not define `{name}`; check the spelling "
                              "and that it is defined at the top level of the file") from None

    def attempt(self, name: str, *args, **kwargs) -> dict:
        """Call ``name(*args)``; an exception becomes data, so one case failing leaves the rest
        of a probe running (partial credit). Returns {"ok", "value"} or {"ok", "error"}."""
        return self.call(lambda: self.__getattr__(name)(*args, **kwargs))

    def call(self, fn, *args, **kwargs) -> dict:
        """:meth:`attempt` for any callable (a probe step using a module the student built);
        the error record points at the student's line where the traceback passes through it."""
        try:
            return {"ok": True, "value": fn(*args, **kwargs)}
        except Exception as error:
            return {"ok": False, "error": describe_exception(error, getattr(self._module, "__file__", None))}


class ContractError(Exception):
    """Raised by probe code when the submission breaks a name, type or shape the handout fixes;
    ``expected`` and ``got`` travel with the error record to the verdict."""

    def __init__(self, message: str, *, expected: str, got: str):
        super().__init__(message)
        self.expected, self.got = expected, got


def build_module(student, device: str, name: str, *args, **kwargs):
    """The student's class ``name`` built with ``args``, moved to ``device``."""
    module = getattr(student, name)(*args, **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise ContractError(f"`{name}(...)` should create an nn.Module (subclass torch.nn.Module)",
                            expected="an nn.Module", got=f"an object of type {type(module).__name__}")
    return module.to(device)


def numerical_jacobian(fn, inputs: list[torch.Tensor], eps: float) -> torch.Tensor:
    """Central differences, as torch.autograd.gradcheck computes them: column j of the
    (n_out, n_in) result is (fn(x + eps e_j) - fn(x - eps e_j)) / (2 eps) over all inputs."""
    columns = []
    with torch.no_grad():
        for tensor in inputs:
            flat = tensor.view(-1)
            for j in range(flat.numel()):
                original = flat[j].item()
                flat[j] = original + eps
                plus = fn(*inputs).detach().clone()
                flat[j] = original - eps
                minus = fn(*inputs).detach().clone()
                flat[j] = original
                columns.append((plus - minus) / (2 * eps))
    return torch.stack(columns, dim=1)


def plain_number(value):
    """A returned scalar as a Python number where it is one (a one-element tensor or a NumPy
    scalar), so that returning ``loss`` instead of ``loss.item()`` still counts; anything else
    unchanged, for the verdict to describe."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    if type(value).__module__ == "numpy" and getattr(value, "size", 0) == 1:
        return value.item()
    return value


def plain_history(history):
    """A training history ``{"train_loss": [...], ...}`` with each value made a plain number
    (:func:`plain_number`); anything that is not a dict unchanged."""
    if not isinstance(history, dict):
        return history
    return {key: [plain_number(v) for v in values] if isinstance(values, (list, tuple)) else values
            for key, values in history.items() if isinstance(key, str)}


def seed_everything(seed: int) -> None:
    """Seed Python's random, numpy and torch, as ASSIGNMENTS.md promises before every check."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(obj, device: str):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {key: to_device(value, device) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(item, device) for item in obj)
    return obj


class _CappedText(io.StringIO):
    def __init__(self, cap: int):
        super().__init__()
        self.cap, self.dropped = cap, 0

    def write(self, text):
        room = self.cap - self.tell()
        if room < len(text):
            self.dropped += len(text) - max(room, 0)
            text = text[:max(room, 0)]
        return super().write(text) if text else 0

    def text(self) -> str:
        tail = f"\n[... {self.dropped} more characters not kept]" if self.dropped else ""
        return self.getvalue() + tail


def run_probe(check_cls, module, inputs: dict, *, device: str, seed: int, check_name: str,
              source_file: str | None, stdout_cap: int = 8192) -> dict:
    """Call ``check_cls.probe`` on ``module``; never raises for anything the module does."""
    seed_everything(derive_seed(seed, check_name, "probe"))
    captured = _CappedText(stdout_cap)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            value = check_cls.probe(Submission(module), to_device(inputs, device), device)
        result = {"ok": True, "value": value}
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # SystemExit too: a student's exit() is a failed check
        result = {"ok": False, "error": describe_exception(error, source_file)}
    result["stdout"] = captured.text()
    result["seconds"] = time.perf_counter() - started
    return result


def describe_exception(error: BaseException, source_file: str | None) -> dict:
    """Plain-data description of an exception, pointing at the student's line when it can."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [frame for frame in frames  # frames in the submission's file or its helper modules
           if source_file and Path(frame.filename).parent == Path(source_file).parent]
    where = None
    if own:
        frame = own[-1]
        where = _where(frame.filename, frame.lineno, frame.name, frame.line, source_file)
    if isinstance(error, SyntaxError) and error.lineno:
        where = _where(error.filename or source_file or "", error.lineno, "<module>", error.text, source_file)
    record = {
        "type": type(error).__name__,
        "message": str(error)[:2000],
        "where": where,
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))[-6000:],
        "hint": _hint(error),
    }
    for key in ("expected", "got"):  # probe code may raise an error that says both (a broken contract)
        if isinstance(getattr(error, key, None), str):
            record[key] = getattr(error, key)[:500]
    return record


def _where(filename: str, line: int, function: str, code: str | None, source_file: str | None) -> dict:
    """``at`` says "line 12", or "helper.py, line 12" for another file of a folder submission
    (the grading process turns it into "cell 4, line 3" for a notebook)."""
    name = Path(filename).name
    main = source_file is not None and name == Path(source_file).name
    return {"line": line, "function": function, "code": (code or "").strip(), "file": name,
            "at": f"line {line}" if main else f"{name}, line {line}"}


CUDA_MISSING = ("Torch not compiled with CUDA enabled", "Found no NVIDIA driver", "No CUDA GPUs are available")


def _hint(error: BaseException) -> str | None:
    if isinstance(error, NotImplementedError):
        return "this part is not implemented yet (the skeleton's NotImplementedError is still there)"
    if isinstance(error, MissingName):
        return str(error)
    if isinstance(error, SystemExit):
        return (f"your code called exit()/sys.exit({error.code!r}); remove it: a graded function must "
                "return its result")
    if isinstance(error, MemoryError) or "can't allocate memory" in str(error):
        return "your code ran out of memory; look for a tensor that grows with a loop or is far too large"
    if type(error).__name__ == "UnavailableModuleError":  # a placeholder module was used: its message says it all
        return str(error)
    if isinstance(error, ModuleNotFoundError):
        return f"the grading environment does not provide the module `{error.name}`"
    if any(sign in str(error) for sign in CUDA_MISSING):
        return ("grading runs on the CPU, and your code asked for a CUDA GPU (written for Colab's GPU?): "
                "put what you create on the device of the inputs you are given (`device = x.device`, or "
                "`next(model.parameters()).device`), and choose a device yourself only with "
                "`torch.device(\"cuda\" if torch.cuda.is_available() else \"cpu\")`")
    if isinstance(error, OSError) and error.errno == errno.EAGAIN:
        return ("your code started more processes or threads than the grader allows; graded functions "
                "must not start processes (use a plain loop, DataLoader(num_workers=0))")
    frames = traceback.extract_tb(error.__traceback__)
    if isinstance(error, OSError) and any(Path(frame.filename).name == "socket.py" for frame in frames):
        return "your code tried to use the network, which is blocked while grading"
    return None
