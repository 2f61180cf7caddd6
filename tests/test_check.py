import pytest
import torch

from autograder.check import CheckContext, derive_seed, load_checks
from autograder.spec import SpecError, load_spec


def context(check="shapes", seed=1):
    spec = load_spec("attention")
    return CheckContext(spec, spec.check(check), seed, "cpu")


def test_generators_are_reproducible_and_distinct_per_check_salt_and_seed():
    draw = lambda ctx, salt="": torch.rand(4, generator=ctx.generator(salt))  # noqa: E731
    assert torch.equal(draw(context()), draw(context()))
    assert not torch.equal(draw(context()), draw(context("masking")))
    assert not torch.equal(draw(context()), draw(context(), "noise"))
    assert not torch.equal(draw(context()), draw(context(seed=2)))
    assert derive_seed(1, "a") == derive_seed(1, "a") != derive_seed(1, "b")


def test_a_missing_threshold_is_the_specs_fault_and_says_where_to_add_it():
    with pytest.raises(SpecError, match=r"assignment.toml: \[thresholds\] has no 'nope'.*add `nope = ...`"):
        context().threshold("nope")
    assert context().budget("random_trials") == 3


def test_hidden_checks_load_and_may_reuse_the_visible_module():
    checks = load_checks(load_spec("attention"))
    assert type(checks["values_float64"]).__mro__[1] is type(checks["values_float32"])
    assert checks["values_float64"].dtype == torch.float64
