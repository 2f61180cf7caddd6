"""Shared fixtures: the attention reference text and a way to make variants of it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


def caught_by(path: Path) -> list[str]:
    """The checks a known-bug variant declares on its first line (`| caught by: a, b`)."""
    first = path.read_text().splitlines()[0]
    return [name.strip() for name in first.split("caught by:")[1].split(",")]
