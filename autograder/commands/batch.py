"""Grade a whole class: every ``<student>/<assignment>`` under a root, on a pool of workers.

find pairs -> skip the unchanged -> grade the rest (local process pool or a Dask cluster)
-> write each pair's reports -> class summary (:mod:`autograder.outputs.summary`).

A job carries the submission's bytes, not its path, and comes back as the text of its
reports: the same job runs unchanged in a local process or on a cluster machine, and only
this process writes into the output folder (atomically). A pair is skipped when its
``results.json`` records the same key: a hash of the submission's files and of the grader
(package, assignment folder, reference solution, torch version, device). The files are hashed
as handed in, a notebook's outputs included: its report names their size, and a key that
left something out could keep a stale grade, where one that counts too much only regrades.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from autograder.outputs.report import write_atomic
from autograder.pipeline import SUBMISSION_SUFFIXES, GraderError
from autograder.spec import ASSIGNMENTS_DIR, SOLUTIONS_DIR, SpecError, load_spec
from autograder.submission.size import (
    SubmissionTooLarge,
    check_size,
    submission_files,
    without_outputs,
)

DASK_CONNECT_TIMEOUT_S = 20
SUMMARY_FILES = ("index.html", "grades.csv")  # written into the output folder beside the student folders
_GRADER_SKIP = {"bugs", "calibration", "__pycache__"}


@dataclass(frozen=True)
class Job:
    """One (student, assignment) pair to grade. ``files``: name -> bytes; a folder submission
    has several, a file submission one."""
    student: str
    assignment: str
    files: tuple[tuple[str, bytes], ...]
    folder: bool  # submitted as <student>/<assignment>/ rather than a single file
    key: str
    device: str
    timeout_scale: float = 1.0  # multiplies every time cap (tests keep runaway cases short)
    notices: tuple[str, ...] = ()  # for the student, from reading the files here (big outputs)


@dataclass
class JobResult:
    student: str
    assignment: str
    pages: dict[str, str] = field(default_factory=dict)  # report file name -> text
    error: str | None = None  # the grader failed (not the student): nothing is written


@dataclass
class BatchSummary:
    """What a run did; ``problems``: (student, what happened) for everything not graded normally."""
    out_dir: Path
    graded: list[tuple[str, str]] = field(default_factory=list)
    reused: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    students: list[str] = field(default_factory=list)
    assignments: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return not self.failed


def grade_all(root: Path, out_dir: Path, *, workers: int | None = None, force: bool = False,
              names: list[str] | None = None, device: str = "auto", scheduler: str | None = None,
              console: Console | None = None, timeout_scale: float = 1.0) -> BatchSummary:
    """Grade every submission under ``root`` into ``out_dir``; never stops on a bad submission."""
    from autograder.outputs.summary import write_summary
    from autograder.pipeline import resolve_device

    console = console or Console(stderr=True)
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise GraderError(f"submissions folder not found: {root} (expected {root}/<student>/<assignment>.py)")
    known = sorted(p.parent.name for p in ASSIGNMENTS_DIR.glob("*/assignment.toml"))
    unknown = sorted(set(names or []) - set(known))
    if unknown:
        raise GraderError(f"unknown assignment(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if workers is not None and workers < 1:
        raise GraderError(f"--workers must be at least 1 (got {workers})")
    device = resolve_device(device)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # a worker dropped to another user may not look in
        out_dir.mkdir(parents=True, exist_ok=True)
        out_dir.chmod(0o700)
    summary = BatchSummary(out_dir)
    jobs = [dataclasses.replace(job, timeout_scale=timeout_scale)
            for job in find_jobs(root, names or known, device, summary)]
    todo = []
    for job in jobs:
        if not force and _recorded_key(out_dir / job.student / job.assignment) == job.key:
            summary.reused.append((job.student, job.assignment))
        else:
            todo.append(job)
    if summary.reused:
        console.print(f"{len(summary.reused)} of {len(jobs)} unchanged since the last run: kept (--force regrades)")
    with _progress(console) as progress:
        task = progress.add_task("grading", total=len(todo))
        for result in run_jobs(todo, workers=workers, scheduler=scheduler):
            pair = (result.student, result.assignment)
            if result.error:
                summary.failed.append(pair)
                summary.problems.append((result.student, f"{result.assignment}: the grader failed: {result.error}"))
                console.print(f"[red]{result.student}/{result.assignment}: the grader failed[/]: {result.error}")
            else:
                for name, text in result.pages.items():
                    write_atomic(out_dir / result.student / result.assignment / name, text)
                summary.graded.append(pair)
            progress.update(task, advance=1, description=f"{result.student}/{result.assignment}")
    write_summary(summary)
    console.print(f"graded {len(summary.graded)}, kept {len(summary.reused)}, failed {len(summary.failed)}; "
                  f"{len(summary.problems)} problem(s) listed in {out_dir / 'index.html'}", soft_wrap=True)
    return summary


def find_jobs(root: Path, names: list[str], device: str, summary: BatchSummary) -> list[Job]:
    """Every ``<student>/<assignment>.py|.ipynb`` (or ``<student>/<assignment>/``) under ``root``;
    what does not fit is recorded in ``summary.problems`` and skipped."""
    jobs, submitted = [], {}  # submitted: student -> assignments they handed in (readable or not)
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            summary.problems.append(("(root)", f"{entry.name}: not a student folder, ignored"))
            continue
        if entry.name in SUMMARY_FILES:  # its reports would sit where the summary goes
            summary.problems.append(("(root)", f"{entry.name}: a student folder may not be named like a "
                                               "summary file; rename it to grade it"))
            continue
        summary.students.append(entry.name)
        claimed, submitted[entry.name] = set(), set()
        for name in names:
            candidates = [p for p in (entry / name, *(entry / f"{name}{s}" for s in SUBMISSION_SUFFIXES))
                          if p.exists() or p.is_symlink()]
            if not candidates:
                continue
            chosen = candidates[0]
            claimed.update(candidates)
            submitted[entry.name].add(name)
            if len(candidates) > 1:
                summary.problems.append((entry.name, f"{name}: found {', '.join(p.name for p in candidates)}; "
                                                     f"graded {chosen.name}"))
            try:
                notices = tuple(check_size(chosen))  # the size rule of `grade` too
                files = _read_submission(chosen)
            except SubmissionTooLarge as error:
                summary.problems.append((entry.name, f"{name}: {chosen.name} not graded: {error}"))
                continue
            except (OSError, ValueError) as error:
                summary.problems.append((entry.name, f"{name}: {chosen.name} could not be read ({error})"))
                continue
            key = _job_key(name, files, device)  # of the files as handed in, outputs included
            if notices:  # big outputs: graded without them (nothing reads them), so jobs stay small
                files = tuple((file, without_outputs(data) if file.endswith(".ipynb") else data)
                              for file, data in files)
            jobs.append(Job(entry.name, name, files, chosen.is_dir(), key, device, notices=notices))
        for extra in sorted(set(entry.iterdir()) - claimed):
            if not extra.name.startswith("."):
                summary.problems.append((entry.name, f"{extra.name}: unexpected file, ignored (submissions are "
                                                     "named <assignment>.py, <assignment>.ipynb or <assignment>/)"))
    summary.assignments = [name for name in names if any(name in handed for handed in submitted.values())]
    for student, handed in submitted.items():
        summary.problems += [(student, f"{name}: no submission") for name in summary.assignments if name not in handed]
    return jobs


def _read_submission(path: Path) -> tuple[tuple[str, bytes], ...]:
    return tuple((p.name, p.read_bytes()) for p in submission_files(path))


def _job_key(assignment: str, files, device: str) -> str:
    digest = hashlib.sha256(grader_fingerprint(assignment).encode())
    digest.update(device.encode())
    for name, data in files:
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


@cache
def grader_fingerprint(assignment: str) -> str:
    """A hash of everything that decides this assignment's grades: the grader's own code and
    templates, the assignment folder (spec, checks, hidden data), the reference, torch's version."""
    import torch

    package = Path(__file__).resolve().parents[1]
    paths = [p for p in sorted(package.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    folder = ASSIGNMENTS_DIR / assignment
    paths += [p for p in sorted(folder.rglob("*"))
              if p.is_file() and not _GRADER_SKIP & set(p.relative_to(folder).parts)]
    paths.append(SOLUTIONS_DIR / f"{assignment}.py")
    digest = hashlib.sha256(torch.__version__.encode())
    for path in paths:
        if path.is_file():
            digest.update(f"\0{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _recorded_key(folder: Path) -> str | None:
    try:
        return json.loads((folder / "results.json").read_text())["extra_data"].get("grade_key")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def grade_job(job: Job) -> JobResult:
    """Grade one pair from its bytes in a scratch folder; returns the reports' text. Runs in a
    pool process or on a Dask worker; whatever goes wrong comes back as ``error``."""
    from autograder.outputs.report import render_reports
    from autograder.pipeline import grade

    _one_torch_thread()
    try:
        spec = load_spec(job.assignment)
        with tempfile.TemporaryDirectory(prefix="autograder-batch-") as scratch:
            target = Path(scratch) / job.student
            if job.folder:
                target = target / job.assignment
            target.mkdir(parents=True)
            for name, data in job.files:
                (target / name).write_bytes(data)
            submission = target if job.folder else target / job.files[0][0]
            result = grade(spec, submission, device=job.device, timeout_scale=job.timeout_scale)
        result.notices += [notice for notice in job.notices if notice not in result.notices]
        result.facts["grade_key"] = job.key
        result.facts["student"] = job.student
        return JobResult(job.student, job.assignment, render_reports(result))
    except (GraderError, SpecError) as error:
        return JobResult(job.student, job.assignment, error=str(error))
    except Exception:  # a grader bug: say so, keep the batch going
        return JobResult(job.student, job.assignment, error=traceback.format_exc(limit=-3).strip())


def run_jobs(jobs: list[Job], *, workers: int | None = None, scheduler: str | None = None) -> Iterator[JobResult]:
    """Results as they finish: on a Dask cluster when ``scheduler`` is given, else a local pool."""
    if not jobs:
        return iter(())
    if scheduler is not None:
        return _run_on_dask(jobs, scheduler)
    return _run_locally(jobs, workers or os.cpu_count() or 1)


def _run_locally(jobs: list[Job], workers: int) -> Iterator[JobResult]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no state from this one
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        futures = {pool.submit(grade_job, job): job for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield future.result()
            except BrokenProcessPool:
                yield JobResult(job.student, job.assignment, error="a grading process died; run grade-all "
                                "again to grade what is left (finished pairs are kept)")


def _run_on_dask(jobs: list[Job], scheduler: str) -> Iterator[JobResult]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise GraderError("--executor dask needs Dask's distributed package: pip install 'autograder[cluster]'") from None
    try:
        client = Client(scheduler, timeout=f"{DASK_CONNECT_TIMEOUT_S}s")
    except OSError as error:
        raise GraderError(f"could not reach the Dask scheduler at {scheduler}: {error}") from None
    with client:
        futures = {client.submit(grade_job, job, pure=False, key=f"grade-{job.student}-{job.assignment}-{job.key[:12]}"): job
                   for job in jobs}
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield future.result()
            except Exception as error:  # a Dask worker lost: the job's error, not the batch's
                yield JobResult(job.student, job.assignment, error=f"the Dask job failed: {error!r}")


def _one_torch_thread() -> None:
    """Grading processes share the cores: one torch thread each (student workers get the spec's)."""
    import torch

    torch.set_num_threads(1)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False)
