"""``autograder calibrate ASSIGNMENT CHECK``: set a trained-behaviour threshold from evidence.

Runs one check's probe, exactly as grading does (same inputs, probe seed, thread count, wire
round trip), over several grading seeds, on:

* the reference solution, which must clear the threshold with margin on every seed;
* alternative correct designs in ``assignments/<name>/calibration/`` (patches of the
  reference headed ``Alternative: <what differs>``, or whole ``.py`` files: see
  :mod:`autograder.commands.variants`), which show the threshold is not tuned to the reference;
* the known bugs that declare this check in their ``Caught by`` list, which must not clear it.

The check supplies ``metrics(ctx, inputs, got) -> {name: value}`` (and optionally
``baselines(ctx, inputs) -> {name: value}``, e.g. always guessing the commonest answer); the table shows each metric's
range per variant, the verdicts and the probe times, and ``--write`` records it as
``assignments/<name>/calibration/<check>.md``. Only instructor-written code runs here, in this process.
"""

from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from autograder.commands.variants import alternatives, known_bugs
from autograder.sandbox import wire
from autograder.spec import AssignmentSpec, SpecError, load_spec
from autograder.toolkit.check import CheckContext, import_text, load_checks
from autograder.toolkit.probe import run_probe
from autograder.toolkit.verdict import Mismatch, judge


@dataclass
class Sample:
    variant: str
    role: str  # "reference", "alternative" or "bug"
    seed: int
    metrics: dict[str, float]
    passed: bool
    seconds: float
    message: str


def variants(spec: AssignmentSpec, check_name: str) -> list[tuple[str, str, str]]:
    """(label, role, source text) of every submission the calibration runs."""
    found = [("reference", "reference", spec.reference_path.read_text(encoding="utf-8"))]
    found += [(alternative.name, "alternative", alternative.text(spec)) for alternative in alternatives(spec)]
    found += [(bug.name, "bug", bug.text(spec)) for bug in known_bugs(spec) if check_name in bug.caught_by]
    return found


def calibrate(assignment: str, check_name: str, seeds: int = 5) -> tuple[AssignmentSpec, list[Sample]]:
    spec = load_spec(assignment)
    checks = load_checks(spec)
    if check_name not in checks or not hasattr(checks[check_name], "metrics"):
        raise SpecError(f"{spec.toml_path}: check {check_name!r} is not a check with `metrics(ctx, inputs, got)`; "
                        "calibration needs one (see autograder/commands/calibrate.py)")
    check, check_spec = checks[check_name], spec.check(check_name)
    samples = []
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.limits.torch_threads)
    try:
        for number, (label, role, text) in enumerate(variants(spec, check_name)):
            module = import_text(text, f"_autograder_calibrate_{spec.name}_{number}", f"<{role} {label}>")
            for seed in range(spec.seed, spec.seed + seeds):
                ctx = CheckContext(spec, check_spec, seed, "cpu")
                inputs = check.inputs(ctx)
                result = run_probe(type(check), module, copy.deepcopy(inputs), device="cpu", seed=seed,
                                   check_name=check_name, source_file=None)
                if result["ok"]:
                    result["value"] = wire.decode(*wire.encode(result["value"]))
                verdict = judge(check, ctx, inputs, result, None)
                metrics = measured(check, ctx, inputs, result)
                samples.append(Sample(label, role, seed, metrics, verdict.passed, result["seconds"], verdict.message))
    finally:
        torch.set_num_threads(threads)
    return spec, samples


def measured(check, ctx: CheckContext, inputs: dict, result: dict) -> dict[str, float]:
    """The check's metrics of one run; none when the probe failed or its output could not be
    measured (the verdict has already said why: the run counts as failing)."""
    if not result["ok"]:
        return {}
    try:
        return check.metrics(ctx, inputs, result["value"])
    except Mismatch:
        return {}


def problems(spec: AssignmentSpec, check_name: str, samples: list[Sample]) -> list[str]:
    """Why the threshold is not sound: a reference or alternative failing, a bug passing, or
    the reference's time over a fifth of the check's cap."""
    found = [f"{s.variant} seed {s.seed} fails: {s.message}" for s in samples if s.role != "bug" and not s.passed]
    found += [f"bug {s.variant} passes with seed {s.seed}" for s in samples if s.role == "bug" and s.passed]
    cap = spec.check(check_name).timeout_s
    slowest = max((s.seconds for s in samples if s.role == "reference"), default=0.0)
    if slowest * 5 > cap:
        found.append(f"the reference takes up to {slowest:.1f} s, over a fifth of the {cap:g} s cap")
    return found


def markdown(spec: AssignmentSpec, check_name: str, samples: list[Sample], command: str) -> str:
    names = list(next((s.metrics for s in samples if s.metrics), {}))
    cap = spec.check(check_name).timeout_s
    lines = [f"# Calibration of `{check_name}` ({spec.name})", "",
             f"Produced by `{command}` (torch {torch.__version__}, {spec.limits.torch_threads} thread, CPU), "
             f"over grading seeds {samples[0].seed}..{samples[-1].seed}; the spec's seed is {spec.seed}.",
             f"Thresholds: {_thresholds(spec)}. Time cap of the check: {cap:g} s.", "",
             *_baselines(spec, check_name, samples[0].seed),
             "| variant | role | " + " | ".join(f"{name} (min / median / max)" for name in names)
             + " | passes | probe time, median / max (s) |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for label in dict.fromkeys(s.variant for s in samples):
        group = [s for s in samples if s.variant == label]
        cells = []
        for name in names:
            values = [s.metrics[name] for s in group if name in s.metrics]
            cells.append(" / ".join(f"{v:.3f}" for v in (min(values), statistics.median(values), max(values)))
                         if values else "–")
        times = [s.seconds for s in group]
        lines.append(f"| {label} | {group[0].role} | " + " | ".join(cells)
                     + f" | {sum(s.passed for s in group)}/{len(group)} | "
                     f"{statistics.median(times):.2f} / {max(times):.2f} |")
    lines += ["", "Per seed:", "", "| variant | seed | " + " | ".join(names) + " | verdict | seconds |",
              "|---|---|" + "---|" * len(names) + "---|---|"]
    for s in samples:
        cells = " | ".join(f"{s.metrics[name]:.3f}" if name in s.metrics else "–" for name in names)
        lines.append(f"| {s.variant} | {s.seed} | {cells} | {'pass' if s.passed else 'fail'} | {s.seconds:.2f} |")
    issues = problems(spec, check_name, samples)
    lines += ["", "Sound: " + ("yes" if not issues else "NO — " + "; ".join(issues)), ""]
    return "\n".join(lines)


def _baselines(spec: AssignmentSpec, check_name: str, seed: int) -> list[str]:
    check = load_checks(spec)[check_name]
    if not hasattr(check, "baselines"):
        return []
    ctx = CheckContext(spec, spec.check(check_name), seed, "cpu")
    values = check.baselines(ctx, check.inputs(ctx))
    return ["Baselines (no model): " + ", ".join(f"{name} {value:.3f}" for name, value in values.items()) + ".", ""]


def _thresholds(spec: AssignmentSpec) -> str:
    return ", ".join(f"`{key} = {value}`" for key, value in spec.thresholds.items())


def write(spec: AssignmentSpec, check_name: str, text: str) -> Path:
    from autograder.outputs.report import write_atomic

    path = spec.folder / "calibration" / f"{check_name}.md"
    write_atomic(path, text)
    return path
