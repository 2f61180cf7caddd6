"""``autograder validate ASSIGNMENT``: prove an assignment is sound before releasing it.

Grades, through the real pipeline: the reference (as ``.py`` and as a notebook), which must
score full marks with every check well inside its time cap; the untouched skeleton (``.py``
and notebook), which must score zero with a message on every check; and each known bug
(``assignments/<name>/bugs/<bug>.patch``, applied to the reference as it is now: see
:mod:`autograder.commands.variants`), which must lose exactly the points of the checks its
header names. A patch that no longer applies is a failed row naming the file and hunk. For every graded variant the
students' public tests (:mod:`autograder.students.local`) must give the same points and messages as the
autograder on the visible checks. Only instructor-written code runs here (reference, skeleton,
bug variants), so the public tests' in-process import is acceptable.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from autograder.commands.variants import PatchError, Variant, known_bugs
from autograder.outputs.score import GradeResult
from autograder.pipeline import grade
from autograder.spec import AssignmentSpec, load_spec
from autograder.students.local import LocalGrader, load_bundle
from autograder.students.public import notebook_text, student_files
from autograder.students.template import TEMPLATE_DIR, regenerate, skeleton

MIN_TIME_MARGIN = 5.0  # the reference may use at most a fifth of any time cap


@dataclass
class Row:
    variant: str
    expectation: str
    score: str
    ok: bool
    note: str = ""


def validate(assignment: str | Path) -> list[Row]:
    spec = load_spec(assignment)
    reference_text = spec.reference_path.read_text(encoding="utf-8")
    skeleton_text = skeleton(reference_text, str(spec.reference_path), spec.analysis)
    rows = []
    with tempfile.TemporaryDirectory(prefix="autograder-validate-") as tmp:
        bundle = _bundle(spec, skeleton_text, Path(tmp) / "student")

        def graded(label: str, text: str, suffix: str = ".py") -> tuple[GradeResult, str]:
            path = Path(tmp) / label.replace(" ", "_") / f"{spec.submission_stem}{suffix}"
            path.parent.mkdir()
            path.write_text(text if suffix == ".py" else notebook_text(spec, text), encoding="utf-8")
            result = grade(spec, path, device="cpu")
            return result, _public_disagreement(bundle, path, result)

        for suffix in (".py", ".ipynb"):
            result, disagreement = graded(f"reference {suffix}", reference_text, suffix)
            rows.append(_row(f"reference ({suffix})", "full marks", result, result.score == result.max_score,
                             disagreement, f"loses: {', '.join(_lost(result))}"))
            if suffix == ".py":
                rows.append(_time_row(spec, result))
        for suffix in (".py", ".ipynb"):
            result, disagreement = graded(f"skeleton {suffix}", skeleton_text, suffix)
            silent = [o.spec.name for o in result.outcomes if not o.verdict.message.strip()]
            rows.append(_row(f"skeleton ({suffix})", "0 points, a message on every check", result,
                             result.score == 0 and not silent, disagreement,
                             f"scored on: {', '.join(_won(result))}" if result.score else
                             f"no message: {', '.join(silent)}" if silent else ""))
        for bug in _known_bugs(spec, rows):
            try:
                text = bug.text(spec)
            except PatchError as error:
                rows.append(Row(f"bug: {bug.name}", f"loses {', '.join(bug.caught_by)}", "", False, str(error)))
                continue
            result, disagreement = graded(f"bug {bug.name}", text)
            lost = _lost(result)
            extra, missed = sorted(set(lost) - set(bug.caught_by)), sorted(set(bug.caught_by) - set(lost))
            note = "; ".join(filter(None, [f"not caught by: {', '.join(missed)}" if missed else "",
                                           f"also loses: {', '.join(extra)}" if extra else ""]))
            rows.append(_row(f"bug: {bug.name}", f"loses {', '.join(bug.caught_by)}", result, not extra and not missed,
                             disagreement, note))
    stale = [path.relative_to(TEMPLATE_DIR) for path in regenerate(write=False, names=[spec.name])]
    rows.append(Row("student folder", "up to date", "", not stale,
                    f"stale: {', '.join(map(str, stale))}; run `autograder template`" if stale else ""))
    return rows


def _known_bugs(spec: AssignmentSpec, rows: list[Row]) -> list[Variant]:
    """The assignment's known bugs; a malformed header, or a bug left as a whole copy, is a failed row."""
    copies = sorted((spec.folder / "bugs").glob("*.py"))
    for copy in copies:
        rows.append(Row(f"bug: {copy.stem}", "a patch", "", False, f"{copy} is a whole copy of a solution. Fix: "
                        f"`autograder bug {spec.name} {copy.stem} {copy}` writes it as a patch; then delete it"))
    try:
        return known_bugs(spec)
    except PatchError as error:
        rows.append(Row("known bugs", "readable headers", "", False, str(error)))
        return []


def _bundle(spec: AssignmentSpec, skeleton_text: str, folder: Path):
    """The public bundle exactly as `autograder template` writes it, in a scratch folder."""
    for relative, content in student_files(spec, skeleton_text).items():
        if relative.startswith("_public/") and not relative.startswith("_public/vendor/autograder"):
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content.read_bytes() if isinstance(content, Path) else
                               content.encode("utf-8") if isinstance(content, str) else content)
    return load_bundle(folder)


def _public_disagreement(bundle, path: Path, result: GradeResult) -> str:
    """'' when the students' public tests give the autograder's points and messages."""
    local = LocalGrader(bundle, path)
    differ = []
    for check in bundle.spec.checks:
        mine, theirs = local.outcome(check.name), result.outcome(check.name)
        if (mine.score, mine.verdict.message) != (theirs.score, theirs.verdict.message):
            differ.append(f"{check.name} (public test: {mine.score:g} '{mine.verdict.message[:80]}'; "
                          f"autograder: {theirs.score:g} '{theirs.verdict.message[:80]}')")
    return f"public tests disagree on {'; '.join(differ)}" if differ else ""


def _row(variant: str, expectation: str, result: GradeResult, ok: bool, disagreement: str, note: str) -> Row:
    return Row(variant, expectation, f"{result.score:g}/{result.max_score:g}", ok and not disagreement,
               "; ".join(filter(None, [note if not ok else "", disagreement])))


def _lost(result: GradeResult) -> list[str]:
    return [o.spec.name for o in result.outcomes if o.score < o.spec.points]


def _won(result: GradeResult) -> list[str]:
    return [o.spec.name for o in result.outcomes if o.score > 0]


def _time_row(spec: AssignmentSpec, result: GradeResult) -> Row:
    """The reference's time against every cap: each check's own, and the import's."""
    timings = result.facts["timings"]
    importing = sum(timings.get(key, 0.0) for key in ("worker_start_s", "torch_import_s", "submission_import_s"))
    spans = [("import", importing, spec.limits.import_timeout_s)]
    spans += [(o.spec.name, o.seconds, o.spec.timeout_s) for o in result.outcomes if o.seconds]
    margins = sorted((cap / max(seconds, 1e-3), name, seconds, cap) for name, seconds, cap in spans)
    tight = [f"{name} {seconds:.2f} s of {cap:g} s" for margin, name, seconds, cap in margins if margin < MIN_TIME_MARGIN]
    margin, name, seconds, cap = margins[0]
    note = f"tightest: {name} {seconds:.2f} s of its {cap:g} s cap (x{margin:.0f} margin)"
    return Row("reference time", f"every cap > {MIN_TIME_MARGIN:g}x its time", f"{timings['total_s']:.1f} s",
               not tight, f"too close to the cap: {', '.join(tight)}" if tight else note)


def print_table(name: str, rows: list[Row], console) -> None:
    from rich.table import Table

    table = Table(title=f"validate {name}")
    for column in ("variant", "expected", "score", "", "note"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.variant, row.expectation, row.score, "[green]ok[/]" if row.ok else "[red]FAIL[/]", row.note)
    console.print(table)
