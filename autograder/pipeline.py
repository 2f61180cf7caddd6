"""The whole grade of one submission: spec -> isolate -> probe -> verdict -> score.

(The report stage, :mod:`autograder.outputs.report`, writes what :func:`grade` returns.)
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

from autograder import __version__
from autograder.outputs.score import CheckOutcome, GradeResult, score_checks
from autograder.sandbox import containment, wire
from autograder.sandbox.isolate import WorkerJob, planned_protections, run_in_worker
from autograder.spec import AssignmentSpec, SpecError, load_spec
from autograder.submission import static
from autograder.submission.analysis import collect as collect_analysis
from autograder.submission.size import SubmissionTooLarge, check_size
from autograder.submission.source import ReductionFault, SubmissionFormatError, prepare
from autograder.toolkit.check import CheckContext, StaticCheck, import_file, load_checks
from autograder.toolkit.probe import run_probe
from autograder.toolkit.verdict import decide, verdict_from_error

SUBMISSION_SUFFIXES = (".py", ".ipynb")


class GraderError(Exception):
    """Grading cannot run at all (bad path, bad spec, missing device); not the student's fault."""


def grade(assignment: str | Path | AssignmentSpec, submission: str | Path, *, device: str = "auto",
          seed: int | None = None, timeout_scale: float = 1.0, top_level: str | None = None) -> GradeResult:
    """Grade one submission (a ``.py`` or ``.ipynb`` file, or a folder holding one).

    ``top_level`` overrides the spec's choice of what runs at import ("definitions" or "all");
    ``timeout_scale`` multiplies every time cap (tests use it to keep runaway cases short).
    """
    clock = _Clock()
    try:
        spec = assignment if isinstance(assignment, AssignmentSpec) else load_spec(assignment)
        checks = load_checks(spec)
        containment.layers()  # AUTOGRADER_SANDBOX=require without a sandbox stops here
    except (SpecError, containment.ContainmentError) as error:
        raise GraderError(str(error)) from None
    device = resolve_device(device)
    seed = spec.seed if seed is None else seed
    submission_file, helpers, notices = locate_submission(spec, Path(submission))
    too_large = None
    try:  # the size rule grade-all applies too (check_size): outputs never count
        notices += check_size(Path(submission))
    except SubmissionTooLarge as error:
        too_large = str(error)
        notices.append(f"Not graded: {too_large}")
    written = None
    if spec.analysis is not None and too_large is None:  # answers in words, read from the text (never run), graded by hand
        written = collect_analysis(spec.analysis, submission_file, Path(submission) if Path(submission).is_dir() else None)
        notices.append(written.notice())
    prepared, unreadable = None, None
    if submission_file is not None and too_large is None:
        try:  # a notebook or script reduced to its definitions, see source.py and reduce.py
            prepared = prepare(submission_file, top_level or spec.top_level)
        except SubmissionFormatError as error:
            unreadable = str(error)
            notices.append(unreadable)
        except ReductionFault as error:  # the grader's fault: "grader failed", regraded after the fix
            raise GraderError(str(error)) from None
    clock.lap("spec_s")

    analysis = static.analyse_submission(spec, prepared, helpers) if prepared else None
    if prepared:
        notices += prepared.notices(spec.required_names) + static.notices(analysis, prepared)
    clock.lap("static_s")

    contexts = {c.name: CheckContext(spec, c, seed, device) for c in spec.checks}
    runtime = [name for name, check in checks.items() if not isinstance(check, StaticCheck)]
    inputs = {name: checks[name].inputs(contexts[name]) for name in runtime}
    clock.lap("inputs_s")

    blocker = (too_large and "your submission is too large to grade") or (
        unreadable and "your notebook could not be read") or (
        "no submission file was found" if prepared is None else static.blocker(analysis))
    probes, run = {}, None
    if blocker is None and runtime:
        limits = dataclasses.replace(spec.limits, import_timeout_s=spec.limits.import_timeout_s * timeout_scale)
        run = run_in_worker(WorkerJob(
            assignment=spec.name, assignment_folder=spec.folder, submission_file=submission_file,
            helper_files=helpers, submission_text=prepared.run_text, helper_texts=_helper_definitions(helpers, top_level or spec.top_level),
            substitutes=static.substitutes(analysis, spec),
            inputs=inputs, seed=seed, device=device,
            limits=limits, timeouts={name: spec.check(name).timeout_s * timeout_scale for name in runtime}))
        probes = run.probes
        prepared.annotate(probes)
        if run.import_error:
            prepared.annotate(run.import_error)
            blocker = verdict_from_error(run.import_error).message
            notices.append(f"Your submission could not be imported: {blocker}")
    clock.lap("probes_s")

    expected = {}
    for name in runtime:  # the reference, through the same probe, only where a verdict needs it
        if blocker is None and checks[name].needs_reference and probes.get(name, {}).get("ok"):
            expected[name] = reference_probe(spec, checks[name], inputs[name], seed)
    clock.lap("reference_s")

    verdicts = decide(checks, contexts, inputs, probes, expected, analysis, blocker)
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
        "top_level": top_level or spec.top_level,
        "protections": run.protections if run else planned_protections(spec.limits), "workers_started": run.workers_started if run else 0,
        "incidents": run.incidents if run else [], "timings": clock.laps,
        "import_output": run.import_stdout if run else "",
    }
    return GradeResult(spec, Path(submission), outcomes, notices, prepared.skipped() if prepared else [],
                       facts, run.output if run else "", written)


def _helper_definitions(helpers: list[Path], top_level: str) -> dict[str, str]:
    """A folder submission's helper modules, reduced like the main file (one that does not
    parse is left as it is: its import reports the error)."""
    try:
        return {helper.name: prepare(helper, top_level).run_text for helper in helpers}
    except ReductionFault as error:
        raise GraderError(str(error)) from None


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
    """The file to grade (``<stem>.py`` or ``<stem>.ipynb``), helper modules beside it
    (folder submissions), and notices."""
    if not path.exists():
        raise GraderError(f"submission not found: {path}")
    wanted = [f"{spec.submission_stem}{suffix}" for suffix in SUBMISSION_SUFFIXES]
    if path.is_file():
        if path.suffix not in SUBMISSION_SUFFIXES:
            raise GraderError(f"{path}: a submission is a .py file or a .ipynb notebook ({' or '.join(wanted)})")
        return path, [], []
    python_files = sorted(p for p in path.iterdir() if p.suffix == ".py" and p.is_file())
    notebooks = sorted(p for p in path.iterdir() if p.suffix == ".ipynb" and p.is_file())
    present = [path / name for name in wanted if (path / name).is_file()]
    if present:
        notices = [] if len(present) == 1 else [
            f"Found both {wanted[0]} and {wanted[1]}; graded {wanted[0]}. Submit only the one you want graded."]
        return present[0], [p for p in python_files if p != present[0]], notices
    candidates = python_files + notebooks
    if len(candidates) == 1:
        return candidates[0], [], [f"Expected {' or '.join(wanted)}; graded {candidates[0].name}, the only "
                                   "Python file or notebook in the submission. Rename it to avoid this notice."]
    found = ", ".join(p.name for p in candidates) or "no Python files or notebooks"
    return None, [], [f"No {' or '.join(wanted)} in the submission (found: {found}). Name your file {wanted[0]} "
                      f"or {wanted[1]}."]


def reference_probe(spec: AssignmentSpec, check, inputs: dict, seed: int) -> dict:
    """The reference solution through ``check``'s probe, in this (trusted) process, on CPU with
    the worker's thread count, and passed through the wire format as a worker's result is: so
    the numbers are the same wherever and whenever they are computed (grading, public tests)."""
    if not spec.reference_path.is_file():
        raise GraderError(f"reference solution missing: {spec.reference_path}")
    module = _import_reference(spec.reference_path, spec.name)
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.limits.torch_threads)
    try:
        result = run_probe(type(check), module, copy.deepcopy(inputs), device="cpu", seed=seed,
                           check_name=check.name, source_file=None)
    finally:
        torch.set_num_threads(threads)
    if not result["ok"]:
        raise GraderError(f"the reference solution fails check {check.name!r}: {result['error']}")
    return {"ok": True, "value": wire.decode(*wire.encode(result["value"]))}


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
