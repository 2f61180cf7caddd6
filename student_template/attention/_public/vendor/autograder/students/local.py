"""The public checks, graded in-process on the student's own machine (their ``pytest``).

A student folder (``student_template/<assignment>/``) carries ``_public/``: ``public.json``
(the visible checks and the spec values they read), ``cases.bin`` (the grader's inputs for
each public check and the reference's answers, in the no-pickle wire format) and, under
``vendor/``, the assignment's visible checks and this package's runtime modules. The verdicts
therefore come from the same check code, inputs and reference numbers as on the autograder,
through the same source preparation (definitions only), probe, verdict and score steps. What
differs: the student's code runs in the student's own process, with pytest-timeout as the
time guard. ``autograder validate`` proves that both give the same verdicts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import linecache
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autograder.outputs.score import CheckOutcome, score_checks
from autograder.sandbox import substitutes, wire
from autograder.spec import AssignmentSpec, CheckSpec, Forbidden, Limits
from autograder.submission import static
from autograder.submission.source import SubmissionFormatError, prepare
from autograder.toolkit.check import Check, CheckContext, StaticCheck, load_check_classes
from autograder.toolkit.probe import _CappedText, describe_exception, run_probe
from autograder.toolkit.verdict import decide, verdict_from_error

PUBLIC_DIR = "_public"


@dataclass
class PublicBundle:
    """What ships to students for one assignment: visible checks, their inputs and answers."""

    spec: AssignmentSpec  # visible checks only
    checks: dict[str, Check]
    cases: dict[str, dict]  # check name -> {"inputs": ..., "expected": probe result or None}
    not_public: dict = field(default_factory=dict)  # {"checks": n, "points": p} the autograder adds


def public_spec_document(spec: AssignmentSpec) -> dict:
    """The JSON form of ``spec`` restricted to its visible checks (no hidden names or titles)."""
    visible = [check for check in spec.checks if check.visibility == "visible"]
    others = [check for check in spec.checks if check.visibility != "visible"]
    document = dataclasses.asdict(dataclasses.replace(spec, checks=tuple(visible)))
    for key in ("folder", "toml_path", "analysis"):  # the written analysis is collected by the grader only
        document.pop(key)
    document["not_public"] = {"checks": len(others), "points": sum(check.points for check in others)}
    return document


def load_bundle(folder: Path) -> PublicBundle:
    """Read ``<student folder>/_public``."""
    public = folder / PUBLIC_DIR
    document = json.loads((public / "public.json").read_text(encoding="utf-8"))
    not_public = document.pop("not_public")
    document["checks"] = tuple(CheckSpec(**{**c, "depends_on": tuple(c["depends_on"]), "tags": tuple(c["tags"])})
                               for c in document["checks"])
    document["forbidden"] = Forbidden(**{key: tuple(value) for key, value in document["forbidden"].items()})
    document["limits"] = Limits(**document["limits"])
    for key in ("required_names", "allowed_imports"):
        document[key] = tuple(document[key])
    spec = AssignmentSpec(folder=public / "vendor", toml_path=public / "public.json", **document)
    classes = load_check_classes(public / "vendor", f"{spec.name}_public")
    with open(public / "cases.bin", "rb") as handle:
        cases = wire.read_frame(handle, max_bytes=2**32)
    return PublicBundle(spec, {c.name: classes[c.name][0]() for c in spec.checks}, cases, not_public)


class LocalGrader:
    """Grades one submission against a bundle, one check at a time (each a pytest test)."""

    def __init__(self, bundle: PublicBundle, submission: Path):
        self.bundle, self.spec, self.submission = bundle, bundle.spec, submission.resolve()
        self.verdicts: dict = {}
        self.probes: dict[str, dict] = {}
        self.notices: list[str] = []
        self._module, self._blocker, self._prepared, self._analysis = None, None, None, None
        try:
            self._prepared = prepare(submission, self.spec.top_level)
        except SubmissionFormatError as error:
            self._blocker = "your notebook could not be read"
            self.notices.append(str(error))
            return
        self._analysis = static.analyse_submission(self.spec, self._prepared, [])
        self.notices += self._prepared.notices(self.spec.required_names) + static.notices(self._analysis, self._prepared)
        self._blocker = static.blocker(self._analysis)
        if self._blocker is None:
            substitutes.install(**static.substitutes(self._analysis, self.spec))
            self._import()

    @property
    def skipped(self) -> list[str]:
        return self._prepared.skipped() if self._prepared else []

    def outcome(self, name: str) -> CheckOutcome:
        """Run ``name`` (and the checks it depends on) and score it as the autograder does."""
        needed = self._with_prerequisites(name)
        for check in needed:
            if check not in self.verdicts:
                self._run(check)
        subset = dataclasses.replace(self.spec, checks=tuple(c for c in self.spec.checks if c.name in needed))
        verdicts = {check: self.verdicts[check] for check in needed}
        points = score_checks(subset, verdicts)  # may replace the verdict of an unmet prerequisite
        probe = self.probes.get(name, {})
        return CheckOutcome(self.spec.check(name), verdicts[name], points[name], probe.get("seconds", 0.0),
                            probe.get("stdout", ""))

    def _with_prerequisites(self, name: str) -> list[str]:
        order, stack = [], [name]
        while stack:
            current = stack.pop()
            if current not in order:
                order.append(current)
                stack.extend(self.spec.check(current).depends_on)
        return [c.name for c in self.spec.checks if c.name in order]

    def _run(self, name: str) -> None:
        check, case = self.bundle.checks[name], self.bundle.cases.get(name, {})
        context = CheckContext(self.spec, self.spec.check(name), self.spec.seed, "cpu")
        if not isinstance(check, StaticCheck) and self._blocker is None:
            threads = torch.get_num_threads()
            torch.set_num_threads(self.spec.limits.torch_threads)  # the autograder's setting: same numbers
            try:
                self.probes[name] = run_probe(type(check), self._module, case["inputs"], device="cpu",
                                              seed=self.spec.seed, check_name=name, source_file=str(self.submission),
                                              stdout_cap=self.spec.limits.output_kb * 1024)
            finally:
                torch.set_num_threads(threads)
            self.probes[name] = _as_from_worker(self.probes[name])
            self._prepared.annotate(self.probes[name])
        expected = {name: case["expected"]} if case.get("expected") is not None else {}
        verdict = decide({name: check}, {name: context}, {name: case.get("inputs")}, self.probes, expected,
                         self._analysis, self._blocker)
        self.verdicts[name] = verdict[name]

    def _import(self) -> None:
        """Import the prepared text as the module ``<stem>``, as the worker does (random state
        restored afterwards, output captured)."""
        path, text = self.submission.resolve(), self._prepared.run_text
        linecache.cache[str(path)] = (len(text), None, text.splitlines(True), str(path))  # tracebacks show it
        module_spec = importlib.util.spec_from_loader(self.spec.submission_stem, loader=None, origin=str(path))
        module = importlib.util.module_from_spec(module_spec)
        module.__file__ = str(path)
        sys.modules[self.spec.submission_stem] = module
        sys.path.insert(0, str(path.parent))
        state = random.getstate(), np.random.get_state(), torch.get_rng_state()
        captured = _CappedText(self.spec.limits.output_kb * 1024)
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                exec(compile(text, str(path), "exec"), module.__dict__)
            self._module = module
        except (Exception, SystemExit) as error:
            described = describe_exception(error, str(path))
            self._prepared.annotate(described)
            self._blocker = verdict_from_error(described).message
            self.notices.append(f"Your submission could not be imported: {self._blocker}")
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])
            torch.set_rng_state(state[2])


def _as_from_worker(result: dict) -> dict:
    """The probe result as the grader receives it from a worker (through the wire format:
    tuples become lists, unknown objects become Opaque), so the verdicts are the same."""
    try:
        return wire.decode(*wire.encode(result))
    except Exception as error:
        message = (f"the grader could not read what your function returned ({type(error).__name__}: {error}); "
                   "return plain tensors, numbers, lists or tuples")
        return {"ok": False, "stdout": result.get("stdout", ""), "seconds": result.get("seconds", 0.0),
                "error": {"type": "UnreadableResult", "message": message, "where": None, "traceback": "",
                          "hint": message}}
