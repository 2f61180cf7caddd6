import pytest
import torch

from autograder.spec import SpecError, load_spec
from autograder.toolkit.check import (
    GRADER_ONLY_METHODS,
    CheckContext,
    derive_seed,
    load_check_classes,
    load_checks,
    load_probe_sources,
    probe_sources,
)


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


def test_the_worker_gets_probe_code_only_and_it_loads_without_the_files():
    spec = load_spec("attention")
    sources = probe_sources(spec.folder)
    assert set(sources) == {"checks.py", "hidden_checks.py"}
    for text in sources.values():
        assert not any(f"def {name}(" in text for name in GRADER_ONLY_METHODS)
    assert "from .checks import" in sources["hidden_checks.py"]  # hidden checks reuse visible helpers
    loaded = load_probe_sources(sources, "attention_probe_test")
    on_disk = load_check_classes(spec.folder, "attention")
    assert set(loaded) == set(on_disk) == {check.name for check in spec.checks}
    for name, (cls, filename) in loaded.items():
        assert filename == on_disk[name][1]
        assert ("probe" in vars(cls)) == ("probe" in vars(on_disk[name][0]))  # every probe is kept
        assert not any(method in vars(cls) for method in GRADER_ONLY_METHODS)
