"""The size rule of ``grade`` and ``grade-all`` alike: what is graded is the code, so the
limit is on the code; a notebook's outputs (plots, printed text) never count, and only a much
larger cap on the raw files guards against abuse.
"""

from __future__ import annotations

import json
from pathlib import Path

from autograder.submission.source import SubmissionFormatError, load_notebook

MAX_CODE_BYTES = 20 * 2**20  # .py files whole, a notebook's code cells (their source only)
MAX_FILE_BYTES = 200 * 2**20  # the submission's files as handed in, outputs and data included
OUTPUTS_NOTICE_BYTES = 5 * 2**20  # a notebook with more outputs than this gets a notice


class SubmissionTooLarge(SubmissionFormatError):
    """Over a size limit of :func:`check_size`: not graded; the message says what counts."""


def submission_files(path: Path) -> list[Path]:
    """The files of a submission: the file itself, or every file directly in its folder."""
    return [path] if not path.is_dir() else sorted(p for p in path.iterdir() if p.is_file())


def check_size(path: Path) -> list[str]:
    """The one size rule (``grade`` and ``grade-all`` both call it, before reading anything
    else): raises :class:`SubmissionTooLarge` when the files of ``path`` (a file or a folder)
    are over :data:`MAX_FILE_BYTES`, or their code over :data:`MAX_CODE_BYTES`; returns the
    notices for the student (a notebook whose outputs are big is graded all the same)."""
    files = submission_files(path)
    what = path.name if len(files) == 1 and files[0] == path else f"the files of {path.name}/"
    total = sum(p.stat().st_size for p in files)
    if total > MAX_FILE_BYTES:  # never opened: a guard against abuse, not a rule about code
        raise SubmissionTooLarge(f"{what} is {_mb(total)}, more than the {_mb(MAX_FILE_BYTES)} a submission "
                                 "may be as handed in. Only code is graded: clear the notebook's outputs "
                                 "(Jupyter: Edit > Clear All Outputs), leave data files out, and submit again.")
    code, notices = 0, []
    for file in files:
        if file.suffix == ".py":
            code += file.stat().st_size
        elif file.suffix == ".ipynb":
            try:
                cells = load_notebook(file).cells
            except SubmissionFormatError:
                continue  # not a notebook we can read: grading says so
            code += sum(len(cell.source.encode()) for cell in cells if cell.cell_type == "code")
            outputs = sum(len(json.dumps(cell.get("outputs", []))) for cell in cells if cell.cell_type == "code")
            if outputs > OUTPUTS_NOTICE_BYTES:
                notices.append(f"{file.name} carries {_mb(outputs)} of cell outputs (plots, printed text): "
                               "outputs are not graded; clear outputs to keep the file small (Jupyter: "
                               "Edit > Clear All Outputs, then save).")
    if code > MAX_CODE_BYTES:
        raise SubmissionTooLarge(f"the code of {what} is {_mb(code)}, more than the {_mb(MAX_CODE_BYTES)} graded "
                                 "(what counts: .py files whole, and a notebook's code cells, never their "
                                 "outputs or its markdown).")
    return notices


def without_outputs(data: bytes) -> bytes:
    """A notebook's bytes with every code cell's outputs emptied (sources, execution counts and
    markdown kept: nothing graded reads outputs); bytes that are not a version 4 notebook come
    back as they are, for grading to report."""
    try:
        notebook = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return data
    cells = notebook.get("cells") if isinstance(notebook, dict) and notebook.get("nbformat") == 4 else None
    if not isinstance(cells, list):
        return data
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code" and "outputs" in cell:
            cell["outputs"] = []
    return json.dumps(notebook, ensure_ascii=False, indent=1).encode()


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB".replace(".0 MB", " MB")
