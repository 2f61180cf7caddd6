"""Shared fixtures: the attention reference text and a way to make variants of it; a headless
browser for the HTML reports (tests/browser.py)."""

from __future__ import annotations

import atexit
import itertools
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from browser import browser_required, missing, start_browser

from autograder.commands import variants
from autograder.spec import load_spec

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "solutions" / "attention.py"
SKELETON = REPO / "student_template" / "attention" / "attention.py"
# Known bugs and calibration alternatives, written out as submissions for the session:
# <VARIANTS>/<role>/<assignment>/<variant>/<assignment>.py (patches applied to the current reference).
VARIANTS = Path(tempfile.mkdtemp(prefix="autograder-test-variants-"))
atexit.register(shutil.rmtree, VARIANTS, ignore_errors=True)


def _written(assignment: str, variant: variants.Variant) -> Path:
    path = VARIANTS / variant.role / assignment / variant.name / f"{assignment}.py"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(variant.text(load_spec(assignment)), encoding="utf-8")
    return path


def bug_files(assignment: str) -> list[Path]:
    """Every known bug of ``assignment`` as a submission file; its folder is named after the bug."""
    return [_written(assignment, bug) for bug in variants.known_bugs(load_spec(assignment))]


def bug_file(assignment: str, name: str) -> Path:
    return next(path for path in bug_files(assignment) if path.parent.name == name)


def alternative_files(assignment: str) -> list[Path]:
    return [_written(assignment, alternative) for alternative in variants.alternatives(load_spec(assignment))]


def caught_by(path: Path) -> list[str]:
    """The checks a known bug written by :func:`bug_files` declares in its patch's header."""
    assignment, name = path.parents[1].name, path.parent.name
    return list(next(bug for bug in variants.known_bugs(load_spec(assignment)) if bug.name == name).caught_by)


BUGS = bug_files("attention")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium (selenium WebDriver) for the whole session; use it with
    ``browser.inspect_page``. Skips when Chromium, chromedriver or selenium is missing, except
    under AUTOGRADER_REQUIRE_BROWSER=1 (CI), where that is a failure."""
    reason = missing()
    if reason:
        if browser_required():
            pytest.fail(f"AUTOGRADER_REQUIRE_BROWSER=1 but no browser: {reason}", pytrace=False)
        pytest.skip(f"no headless browser: {reason}")
    driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture
def submission(tmp_path):
    """submission(text) or submission(replace={old: new}, append=...) -> path of attention.py."""
    def make(text: str | None = None, *, replace: dict | None = None, append: str = "",
             name: str = "attention.py") -> Path:
        source = REFERENCE.read_text() if text is None else text
        for old, new in (replace or {}).items():
            assert old in source, f"fixture edit does not apply: {old!r}"
            source = source.replace(old, new)
        folder = tmp_path / "submission"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_text(source + append)
        return path
    return make


def write_notebook(path: Path, cells: list, *, counts: list | None = None) -> Path:
    """A notebook with code cells (strings) and markdown cells (("md", text)); `counts` sets
    the code cells' execution counts, as a notebook run out of order has them."""
    import nbformat

    made = []
    for cell in cells:
        made.append(nbformat.v4.new_markdown_cell(cell[1]) if isinstance(cell, tuple)
                    else nbformat.v4.new_code_cell(cell))
    code = [cell for cell in made if cell.cell_type == "code"]
    for cell, count in zip(code, counts or [None] * len(code), strict=True):
        cell.execution_count = count
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nbformat.v4.new_notebook(cells=made)))
    return path


def variant_of(solution: str, folder: Path, replace: dict[str, str] | None = None, append: str = "") -> Path:
    """A copy of ``solutions/<solution>.py`` in ``folder`` with text replaced (each must apply)."""
    source = (REPO / "solutions" / f"{solution}.py").read_text()
    for old, new in (replace or {}).items():
        assert source.count(old) == 1, f"edit does not apply exactly once: {old!r}"
        source = source.replace(old, new)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{solution}.py"
    path.write_text(source + append)
    return path


def run_check(assignment: str, check_name: str, path: Path, seed: int | None = None):
    """One check on one (trusted, test-written) file, in this process, exactly as grading
    computes it: the check's inputs, its probe, the wire round trip, the reference, the verdict.
    Much faster than a whole grade when a test is about one check."""
    import copy

    from autograder.pipeline import reference_probe
    from autograder.sandbox import wire
    from autograder.spec import load_spec
    from autograder.toolkit.check import CheckContext, import_file, load_checks
    from autograder.toolkit.probe import run_probe
    from autograder.toolkit.verdict import judge

    spec = load_spec(assignment)
    check = load_checks(spec)[check_name]
    ctx = CheckContext(spec, spec.check(check_name), spec.seed if seed is None else seed, "cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.limits.torch_threads)  # as the worker does; also spares the other core
    try:
        inputs = check.inputs(ctx)
        module = import_file(path, f"_test_module_{next(_MODULE_NUMBERS)}")
        result = run_probe(type(check), module, copy.deepcopy(inputs), device="cpu", seed=ctx.seed,
                           check_name=check_name, source_file=str(path))
        if result["ok"]:
            result["value"] = wire.decode(*wire.encode(result["value"]))
        needs = check.needs_reference and result["ok"]
        expected = reference_probe(spec, check, inputs, ctx.seed) if needs else None
        return judge(check, ctx, inputs, result, expected)
    finally:
        torch.set_num_threads(threads)


_MODULE_NUMBERS = itertools.count()
