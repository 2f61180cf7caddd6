"""pytest plugin behind a student folder's public tests (loaded by the folder's conftest.py).

One test per visible check, named after it, guarded by pytest-timeout with the check's own
time cap; the verdict, its message and the points come from :class:`autograder.students.local.LocalGrader`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autograder.students.local import LocalGrader, load_bundle

FOLDER = Path(__file__).resolve().parents[4]  # <student folder>/_public/vendor/autograder/students/
_state: dict = {}


def pytest_addoption(parser):
    parser.addoption("--submission", default=None, metavar="FILE",
                     help="the file to check, e.g. attention.py or attention.ipynb "
                          "(default: whichever of the two was saved last)")


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): a check's time cap (pip install pytest-timeout)")
    bundle = load_bundle(FOLDER)
    _state["bundle"] = bundle
    _state["submission"] = _choose(config.getoption("submission"), bundle.spec.submission_stem)
    _state["outcomes"] = {}


def _choose(option: str | None, stem: str) -> Path:
    if option:
        path = Path(option).resolve()
        if not path.is_file():
            raise pytest.UsageError(f"--submission {option}: no such file")
        return path
    present = [FOLDER / f"{stem}{suffix}" for suffix in (".py", ".ipynb") if (FOLDER / f"{stem}{suffix}").is_file()]
    if not present:
        raise pytest.UsageError(f"no {stem}.py or {stem}.ipynb in {FOLDER}; pass --submission FILE")
    return max(present, key=lambda path: path.stat().st_mtime)


def pytest_report_header(config):
    bundle, submission = _state["bundle"], _state["submission"]
    hidden = bundle.not_public
    return [f"{bundle.spec.title}: the autograder's {len(bundle.spec.checks)} public checks on {submission.name}",
            f"(the autograder also runs {hidden['checks']} check(s) not shown here, worth {hidden['points']:g} points)"]


def pytest_generate_tests(metafunc):
    if "check_name" in metafunc.fixturenames:
        names = [check.name for check in _state["bundle"].spec.checks]
        metafunc.parametrize("check_name", names, ids=names)


def pytest_collection_modifyitems(config, items):
    spec = _state["bundle"].spec
    for item in items:
        name = getattr(item, "callspec", None) and item.callspec.params.get("check_name")
        if name:
            item.add_marker(pytest.mark.timeout(spec.check(name).timeout_s))


@pytest.fixture(scope="session")
def local_grader() -> LocalGrader:
    _state["grader"] = LocalGrader(_state["bundle"], _state["submission"])
    return _state["grader"]


@pytest.fixture
def public_check(local_grader):
    """public_check(name): run that check; fail the test with the autograder's message."""
    def run(name: str) -> None:
        outcome = local_grader.outcome(name)
        _state["outcomes"][name] = outcome
        if outcome.score < outcome.spec.points:  # notes about the whole file come once, in the summary
            pytest.fail(f"{name} ({outcome.score:g}/{outcome.spec.points:g} points): {outcome.text()}", pytrace=False)
    return run


def pytest_terminal_summary(terminalreporter):
    outcomes, grader = _state.get("outcomes"), _state.get("grader")
    if not outcomes or grader is None:
        return
    write = terminalreporter.write_line
    terminalreporter.section("autograder public checks")
    for notice in grader.notices:
        write(f"note: {notice}")
    if grader.skipped:
        write(f"not run ({len(grader.skipped)} top-level statements; the grader runs definitions only):")
        for line in grader.skipped[:20]:
            write(f"  {line}")
        if len(grader.skipped) > 20:
            write(f"  ... and {len(grader.skipped) - 20} more")
    score = sum(outcome.score for outcome in outcomes.values())
    total = sum(outcome.spec.points for outcome in outcomes.values())
    write(f"{_state['submission'].name}: {score:g} / {total:g} points on the public checks run")
