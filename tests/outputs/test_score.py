from autograder.outputs.score import score_checks
from autograder.spec import load_spec
from autograder.toolkit.check import Verdict


def verdicts(**overrides):
    spec = load_spec("attention")
    base = {check.name: Verdict.ok("fine") for check in spec.checks}
    base.update(overrides)
    return spec, base


def test_full_marks_when_everything_passes():
    spec, all_ok = verdicts()
    assert sum(score_checks(spec, all_ok).values()) == spec.max_score


def test_partial_credit_only_where_the_spec_allows_it():
    spec, mixed = verdicts(shapes=Verdict.fail("3 of 5", fraction=0.6), masking=Verdict.fail("x", fraction=0.5))
    points = score_checks(spec, mixed)
    assert points["shapes"] == 0.6 * spec.check("shapes").points  # partial = true
    assert points["masking"] == 0.0  # not partial


def test_failed_prerequisite_withholds_dependent_points_and_says_why():
    spec, mixed = verdicts(values_float32=Verdict.fail("wrong"))
    points = score_checks(spec, mixed)
    assert points["from_scratch"] == 0.0
    assert "counts only once `values_float32` passes" in mixed["from_scratch"].message
