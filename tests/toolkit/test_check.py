import pytest
import torch

from autograder.spec import SpecError, load_spec
from autograder.toolkit.check import (
    GRADER_ONLY_METHODS,
    CheckContext,
    check_files,
    derive_seed,
    load_check_classes,
    load_checks,
    load_probe_sources,
    probe_sources,
    ships_to_students,
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


PACKAGE_FILES = {
    "checks/__init__.py": '"""Visible checks, one module per concern."""\nfrom .common import draw\n',
    "checks/common.py": "import torch\n\ndef draw(ctx):\n    return torch.arange(3.0)\n",
    "checks/values.py": (
        "from autograder.toolkit.check import Check, Verdict\nfrom .common import draw\n\n"
        "class Values(Check):\n    name = 'values'\n    def inputs(self, ctx):\n        return {'x': draw(ctx)}\n"
        "    @staticmethod\n    def probe(student, inputs, device):\n        return inputs['x'] * 2\n"
        "    def verdict(self, ctx, inputs, got, expected):\n        return Verdict.ok('fine')\n"),
    "hidden_checks/__init__.py": "",
    "hidden_checks/large.py": (
        "from ..checks.values import Values\n\nclass Large(Values):\n    name = 'large'\n"),
}


def write_package(folder, files):
    for relative, text in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def test_checks_may_be_packages_with_one_module_per_concern(tmp_path):
    folder = write_package(tmp_path, PACKAGE_FILES)
    assert check_files(folder) == ["checks/__init__.py", "checks/common.py", "checks/values.py",
                                   "hidden_checks/__init__.py", "hidden_checks/large.py"]
    assert [ships_to_students(f) for f in check_files(folder)] == [True, True, True, False, False]
    on_disk = load_check_classes(folder, "package_test")
    assert {name: filename for name, (_, filename) in on_disk.items()} == {
        "values": "checks/values.py", "large": "hidden_checks/large.py"}
    # in the worker: the same classes from the job's sources alone, relative imports included
    loaded = load_probe_sources(probe_sources(folder), "package_probe_test")
    assert {name: filename for name, (_, filename) in loaded.items()} == {
        "values": "checks/values.py", "large": "hidden_checks/large.py"}
    assert loaded["large"][0].__mro__[1] is loaded["values"][0]
    assert torch.equal(loaded["large"][0].probe(None, {"x": torch.ones(2)}, "cpu"), torch.full((2,), 2.0))


def test_a_hidden_check_in_the_package_that_ships_is_refused(tmp_path):
    files = {**PACKAGE_FILES, "checks/leak.py": PACKAGE_FILES["hidden_checks/large.py"]}
    del files["hidden_checks/large.py"]
    folder = write_package(tmp_path / "leaky", files)
    (folder / "assignment.toml").write_text(
        '[assignment]\nname = "leaky"\ntitle = "Leaky"\nrequired_names = [\"f\"]\n\n'
        '[[checks]]\nname = "values"\ntitle = "Values"\npoints = 1\n\n'
        '[[checks]]\nname = "large"\ntitle = "Large"\npoints = 1\nvisibility = "hidden"\n')
    with pytest.raises(SpecError, match="check 'large' has visibility 'hidden' but lives in checks/leak.py, which "
                                        "ships to students. Fix: move it to hidden_checks"):
        load_checks(load_spec(folder))
