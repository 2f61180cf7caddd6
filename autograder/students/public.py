"""What a student folder holds besides the ``.py`` skeleton and the handout: the skeleton as a
notebook, and the public tests with their data and runtime (see :mod:`autograder.students.local`).

Nothing hidden goes in: only the visible checks' code (``checks.py``, or the ``checks/``
package), their inputs and the reference's answers to them, and spec values; never
``hidden_checks``, hidden check names, or reference code.
"""

from __future__ import annotations

import ast
import json
import textwrap
from pathlib import Path

import torch

from autograder.sandbox import wire
from autograder.spec import AssignmentSpec, SpecError
from autograder.students.local import PUBLIC_DIR, public_spec_document
from autograder.toolkit.check import (
    CheckContext,
    StaticCheck,
    check_files,
    load_checks,
    ships_to_students,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]
STUDENT_FILES = PACKAGE_DIR / "students" / "student_files"  # conftest.py, test_public.py, pytest.ini
# The runtime the public tests import; none of these may import psutil, jinja2, rich or jsonschema.
VENDORED = ("__init__.py", "spec.py", "student_libraries.txt",
            "toolkit/__init__.py", "toolkit/check.py", "toolkit/probe.py", "toolkit/verdict.py",
            "toolkit/figures.py", "toolkit/sampling.py", "toolkit/corpus.py",
            "sandbox/__init__.py", "sandbox/wire.py", "sandbox/substitutes.py",
            "submission/__init__.py", "submission/static.py", "submission/reduce.py", "submission/source.py",
            "outputs/__init__.py", "outputs/score.py",
            "students/__init__.py", "students/local.py", "students/pytest_public.py")


def student_files(spec: AssignmentSpec, skeleton_text: str) -> dict[str, str | bytes | Path]:
    """Relative path in the student folder -> text, bytes, or a file to copy."""
    files: dict[str, str | bytes | Path] = {
        f"{spec.submission_stem}.ipynb": notebook_text(spec, skeleton_text),
        f"{PUBLIC_DIR}/public.json": json.dumps(public_spec_document(spec), indent=2) + "\n",
        f"{PUBLIC_DIR}/cases.bin": wire.pack_frame(public_cases(spec)),
    }
    for relative in check_files(spec.folder):
        if ships_to_students(relative):
            files[f"{PUBLIC_DIR}/vendor/{relative}"] = spec.folder / relative
    for name in VENDORED:
        files[f"{PUBLIC_DIR}/vendor/autograder/{name}"] = PACKAGE_DIR / name
    for path in sorted(STUDENT_FILES.iterdir()):
        if path.is_file():
            files[path.name] = path
    return files


def public_cases(spec: AssignmentSpec) -> dict[str, dict]:
    """For each visible runtime check: the grader's inputs and the reference's probe result
    (``None`` where the verdict does not use one), computed exactly as when grading."""
    from autograder.pipeline import GraderError, reference_probe  # noqa: I001  (grader side only)

    checks = load_checks(spec)
    cases = {}
    for check_spec in spec.checks:
        check = checks[check_spec.name]
        if check_spec.visibility != "visible":
            continue
        for needed in check_spec.depends_on:
            if spec.check(needed).visibility != "visible":
                raise SpecError(f"{spec.toml_path}: visible check {check_spec.name!r} depends on {needed!r}, "
                                "which is not visible, so students could not reproduce it locally. Fix: make "
                                "both visible or both hidden.")
        if isinstance(check, StaticCheck):
            continue
        inputs = check.inputs(CheckContext(spec, check_spec, spec.seed, "cpu"))
        try:
            expected = reference_probe(spec, check, inputs, spec.seed) if check.needs_reference else None
        except GraderError as error:
            raise SpecError(str(error)) from None
        cases[check_spec.name] = {"inputs": inputs, "expected": expected}
    return cases


def same_cases(old: bytes, new: bytes) -> bool:
    """Whether two cases.bin files agree to rounding (another CPU may differ in the last bits)."""
    try:
        return _close(wire.unpack_frame(old), wire.unpack_frame(new))
    except wire.WireError:
        return False


def _close(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not a.is_floating_point():
            return bool(torch.equal(a, b))
        return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def notebook_text(spec: AssignmentSpec, skeleton_text: str) -> str:
    """The skeleton as a Jupyter notebook: the handout's sections as markdown cells, then one
    code cell per top-level block of the skeleton, then how to check the work."""
    import nbformat

    handout = spec.folder / "handout.md"
    cells = [nbformat.v4.new_markdown_cell(section) for section in _sections(handout.read_text(encoding="utf-8"))
             ] if handout.is_file() else [nbformat.v4.new_markdown_cell(f"# {spec.title}")]
    cells.append(nbformat.v4.new_markdown_cell(
        "## Your code\n\nFill in the functions below. The grader runs only the definitions in this "
        "notebook (imports, functions, classes, constants): cells that call your code, train or plot "
        "are for you and are not run when grading."))
    cells += [nbformat.v4.new_code_cell(block) for block in _code_blocks(skeleton_text)]
    cells.append(nbformat.v4.new_markdown_cell(
        f"## Checking your work\n\nSave the notebook, then in a terminal in this folder run\n\n"
        f"```bash\npytest --submission {spec.submission_stem}.ipynb\n```\n\nEach test is one of the "
        "autograder's public checks, with the same inputs, numbers and messages."))
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    for number, cell in enumerate(notebook.cells):
        cell["id"] = f"{spec.name}-{number}"  # stable ids: regenerating gives the same file
    return nbformat.writes(notebook) + "\n"


def _sections(markdown: str) -> list[str]:
    """Split at level-1 and level-2 headings."""
    sections, current = [], []
    for line in markdown.splitlines():
        if line.startswith(("# ", "## ")) and current:
            sections.append("\n".join(current).strip())
            current = []
        current.append(line)
    sections.append("\n".join(current).strip())
    return [section for section in sections if section]


def _code_blocks(text: str) -> list[str]:
    """Imports (with the module docstring) in one cell, then each top-level definition with the
    comments above it; a `__main__` block becomes a plain "try it" cell, since in Jupyter
    `__name__` is "__main__" and the block would run anyway."""
    lines = text.splitlines()
    tree = ast.parse(text)
    starts = []
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        starts.append((first, node))
    blocks, header = [], []
    for index, (first, node) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(lines)
        chunk = "\n".join(lines[first:end]).strip("\n")
        if isinstance(node, (ast.Import, ast.ImportFrom)) or index == 0 and isinstance(node, ast.Expr):
            header.append(chunk)
        elif isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"':
            body = textwrap.dedent("\n".join(lines[node.body[0].lineno - 1:node.end_lineno]))
            blocks.append("# Try your functions here. Top-level code like this is not run by the grader.\n" + body)
        else:
            blocks.append(chunk)
    return (["\n\n".join(header)] if header else []) + blocks
