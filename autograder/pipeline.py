"""The whole grade of one submission: spec -> isolate -> probe -> verdict -> score.

(The report stage, :mod:`autograder.report`, writes what :func:`grade` returns.)
"""

from __future__ import annotations

import copy
import dataclasses
import platform
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch

from autograder import __version__, static
from autograder.check import CheckContext, StaticCheck, Verdict, import_file, load_checks
from autograder.isolate import PROTECTIONS, WorkerJob, run_in_worker
from autograder.probe import run_probe
from autograder.score import CheckOutcome, GradeResult, score_checks
from autograder.spec import AssignmentSpec, SpecError, load_spec
from autograder.verdict import judge, verdict_from_error


class GraderError(Exception):
    """Grading cannot run at all (bad path, bad spec, missing device); not the student's fault."""


def grade(assignment: str | Path | AssignmentSpec, submission: str | Path, *, device: str = "auto",
          seed: int | None = None, timeout_scale: float = 1.0) -> GradeResult:
    """Grade one submission (a ``.py`` file or a folder holding ``<assignment>.py``).

    ``timeout_scale`` multiplies every time cap (tests use it to keep runaway cases short).
    """
    clock = _Clock()
    try:
        spec = assignment if isinstance(assignment, AssignmentSpec) else load_spec(assignment)
        checks = load_checks(spec)
    except SpecError as error:
        raise GraderError(str(error)) from None
    device = resolve_device(device)
    seed = spec.seed if seed is None else seed
    submission_file, helpers, notices = locate_submission(spec, Path(submission))
    clock.lap("spec_s")

    source = submission_file.read_text(encoding="utf-8", errors="replace") if submission_file else ""
    local_modules = tuple(path.stem for path in helpers)  # a folder submission's own modules
    analysis = static.analyse(source, submission_file.name if submission_file else "", required=spec.required_names,
                              allowed_imports=spec.allowed_imports + local_modules, forbidden=spec.forbidden.calls,
                              scope=spec.forbidden.scope)
    for helper in helpers:
        analysis.forbidden += static.forbidden_in_helper(helper.read_text(encoding="utf-8", errors="replace"),
                                                         helper.name, spec.forbidden.calls)
    notices += _static_notices(analysis)
    clock.lap("static_s")

    contexts = {c.name: CheckContext(spec, c, seed, device) for c in spec.checks}
    runtime = [name for name, check in checks.items() if not isinstance(check, StaticCheck)]
    inputs = {name: checks[name].inputs(contexts[name]) for name in runtime}
    clock.lap("inputs_s")

    blocker = _blocker(submission_file, analysis)
    probes, run = {}, None
    if blocker is None and runtime:
        limits = dataclasses.replace(spec.limits, import_timeout_s=spec.limits.import_timeout_s * timeout_scale)
        run = run_in_worker(WorkerJob(
            assignment=spec.name, assignment_folder=spec.folder, submission_file=submission_file,
            helper_files=helpers, inputs=inputs, seed=seed, device=device, limits=limits,
            timeouts={name: spec.check(name).timeout_s * timeout_scale for name in runtime}))
        probes = run.probes
        if run.import_error:
            blocker = verdict_from_error(run.import_error).message
            notices.append(f"Your submission could not be imported: {blocker}")
    clock.lap("probes_s")

    expected = {}
    for name in runtime:  # the reference, through the same probe, only where a verdict needs it
        if blocker is None and checks[name].needs_reference and probes.get(name, {}).get("ok"):
            expected[name] = run_probe(type(checks[name]), _reference_module(spec), copy.deepcopy(inputs[name]),
                                       device="cpu", seed=seed, check_name=name, source_file=None)
            if not expected[name]["ok"]:
                raise GraderError(f"the reference solution fails check {name!r}: {expected[name]['error']}")
    clock.lap("reference_s")

    verdicts = {}
    for name, check in checks.items():
        if isinstance(check, StaticCheck):
            verdicts[name] = check.verdict_static(contexts[name], analysis)
        elif blocker is not None:
            verdicts[name] = _not_run(blocker)
        else:
            verdicts[name] = judge(check, contexts[name], inputs[name], probes[name], expected.get(name))
    points = score_checks(spec, verdicts)
    outcomes = [CheckOutcome(c, verdicts[c.name], points[c.name], probes.get(c.name, {}).get("seconds", 0.0),
                             probes.get(c.name, {}).get("stdout", "")) for c in spec.checks]
    clock.lap("verdicts_s")

    if run is not None:  # split the worker stage into start-up, torch import, import, checks
        clock.laps.update(run.timings)
        clock.laps["checks_s"] = clock.laps["probes_s"] - sum(run.timings.values())
    facts = {
        "autograder": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "platform": platform.platform(), "device": device, "seed": seed,
        "protections": list(PROTECTIONS), "workers_started": run.workers_started if run else 0,
        "incidents": run.incidents if run else [], "timings": clock.laps,
        "import_output": run.import_stdout if run else "",
    }
    return GradeResult(spec, Path(submission), outcomes, notices, facts, run.output if run else "")


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GraderError("--device cuda was asked for, but this machine has no usable CUDA GPU "
                          "(torch.cuda.is_available() is False); use --device cpu or auto")
    if device not in ("cpu", "cuda"):
        raise GraderError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def locate_submission(spec: AssignmentSpec, path: Path) -> tuple[Path | None, list[Path], list[str]]:
    """The file to grade, helper modules beside it (folder submissions), and notices."""
    if not path.exists():
        raise GraderError(f"submission not found: {path}")
    wanted = f"{spec.submission_stem}.py"
    if path.is_file():
        if path.suffix != ".py":
            raise GraderError(f"{path}: only .py submissions are supported here; expected {wanted}")
        return path, [], []
    python_files = sorted(p for p in path.iterdir() if p.suffix == ".py" and p.is_file())
    if (path / wanted).is_file():
        return path / wanted, [p for p in python_files if p.name != wanted], []
    if len(python_files) == 1:
        return python_files[0], [], [f"Expected {wanted}; graded {python_files[0].name}, the only "
                                     "Python file in the submission. Rename it to avoid this notice."]
    found = ", ".join(p.name for p in python_files) or "no Python files"
    return None, [], [f"No {wanted} in the submission (found: {found}). Name your file {wanted}."]


def _static_notices(analysis: static.StaticAnalysis) -> list[str]:
    notices = []
    if analysis.syntax_error:
        error = analysis.syntax_error
        notices.append(f"Syntax error at line {error['line']}: {error['message']} "
                       f"(`{error['code']}`); nothing could run.")
    for module, line in analysis.disallowed_imports:
        notices.append(f"Line {line} imports `{module}`, which the grading environment does not offer; "
                       "use only the libraries the handout lists. Nothing could run.")
    if analysis.missing and not analysis.syntax_error:
        notices.append("Not defined at the top level: " + ", ".join(f"`{n}`" for n in analysis.missing) + ".")
    return notices


def _blocker(submission_file: Path | None, analysis: static.StaticAnalysis) -> str | None:
    """Why nothing can run at all, in one sentence (every runtime check then says it)."""
    if submission_file is None:
        return "no submission file was found"
    if analysis.syntax_error:
        return f"your file has a syntax error at line {analysis.syntax_error['line']}"
    if analysis.disallowed_imports:
        module, line = analysis.disallowed_imports[0]
        return f"your file imports `{module}` (line {line}), which the grading environment does not offer"
    return None


def _not_run(reason: str) -> Verdict:
    return Verdict.fail(f"not run: {reason}")


def _reference_module(spec: AssignmentSpec):
    if not spec.reference_path.is_file():
        raise GraderError(f"reference solution missing: {spec.reference_path}")
    return _import_reference(spec.reference_path, spec.name)


@cache
def _import_reference(path: Path, name: str):
    return import_file(path, f"_autograder_reference_{name}")


class _Clock:
    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.laps["total_s"] = now - self.start
        self.last = now
