"""Shared fixtures: the attention reference text and a way to make variants of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autograder.validate import caught_by  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "solutions" / "attention.py"
SKELETON = REPO / "student_template" / "attention" / "attention.py"
BUGS = sorted((REPO / "assignments" / "attention" / "bugs").glob("*.py"))

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


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
