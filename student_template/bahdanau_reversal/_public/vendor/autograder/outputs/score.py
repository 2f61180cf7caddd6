"""Stage 5, score: points per check from verdicts, with partial credit and prerequisites."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autograder.spec import AssignmentSpec, CheckSpec
from autograder.toolkit.check import Verdict

if TYPE_CHECKING:  # not imported at run time: the students' vendored copy has no analysis.py
    from autograder.submission.analysis import WrittenAnalysis


@dataclass
class CheckOutcome:
    spec: CheckSpec
    verdict: Verdict
    score: float
    seconds: float = 0.0
    stdout: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def text(self) -> str:
        """The words a student reads for this check (results.json and the public tests)."""
        verdict = self.verdict
        lines = [("Passed: " if verdict.passed else "Failed: ") + verdict.message]
        if verdict.expected is not None:
            lines.append(f"Expected: {verdict.expected}")
        if verdict.got is not None:
            lines.append(f"Got: {verdict.got}")
        if self.stdout.strip():
            lines.append("Your code printed:\n" + self.stdout[:2000])
        return "\n".join(lines)


@dataclass
class GradeResult:
    """Everything the report stage needs; produced by :func:`autograder.pipeline.grade`."""

    spec: AssignmentSpec
    submission: Path
    outcomes: list[CheckOutcome]
    notices: list[str] = field(default_factory=list)  # submission-wide messages for the student
    skipped: list[str] = field(default_factory=list)  # top-level statements that did not run
    facts: dict = field(default_factory=dict)  # versions, device, seed, protections, timings
    worker_output: str = ""
    analysis: WrittenAnalysis | None = None  # the written answers, for manual grading

    @property
    def score(self) -> float:
        return round(sum(outcome.score for outcome in self.outcomes), 4)

    @property
    def max_score(self) -> float:
        return self.spec.max_score

    def outcome(self, name: str) -> CheckOutcome:
        return next(outcome for outcome in self.outcomes if outcome.spec.name == name)


def score_checks(spec: AssignmentSpec, verdicts: dict[str, Verdict]) -> dict[str, float]:
    """Points per check. A check whose prerequisites (``depends_on``) did not all pass fully
    earns nothing and its verdict is replaced by a message naming them (in place)."""
    passed = {name: verdict.passed for name, verdict in verdicts.items()}
    changed = True
    while changed:  # a failed prerequisite can fail a chain of dependents
        changed = False
        for check in spec.checks:
            failed = [needed for needed in check.depends_on if not passed[needed]]
            if failed and passed[check.name]:
                passed[check.name] = False
                changed = True
                verdicts[check.name] = Verdict.fail(
                    f"not awarded: it counts only once {', '.join(f'`{n}`' for n in failed)} "
                    f"passes ({verdicts[check.name].message})")
    points = {}
    for check in spec.checks:
        verdict = verdicts[check.name]
        if verdict.passed:
            points[check.name] = float(check.points)
        elif check.partial:
            points[check.name] = round(check.points * verdict.fraction, 4)
        else:
            points[check.name] = 0.0
    return points
