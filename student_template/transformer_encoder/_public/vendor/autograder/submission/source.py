"""Reading a submission's source: a ``.py`` file or the code cells of a ``.ipynb`` notebook,
and preparing what runs (its definitions, see :mod:`autograder.submission.reduce`).

Both become one Python text plus a :class:`SourceMap` that turns a line of that text back into
what the student sees ("cell 7, line 3" in a notebook, "line 12" in a script). IPython-only
lines (``!pip install``, ``%matplotlib inline``, ``files = !ls``, ``obj?``) are blanked so the
text parses; a cell magic whose body is Python (``%%time``) keeps its body, other cell magics
(``%%bash``, ``%%writefile``) drop the cell. In a notebook, a cell that still does not parse is
skipped with a notice, as Jupyter would fail only that cell; in a script a syntax error stays a
syntax error. Line numbers are preserved: every removed line becomes blank (or ``pass`` inside
a block).
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from autograder.submission.reduce import Reduction, definitions_only, line_texts

PYTHON_CELL_MAGICS = ("time", "timeit", "capture", "prun", "debug")  # their body is Python
_ASSIGNED_SHELL = re.compile(r"^\s*([A-Za-z_][\w, ]*)=\s*[!%]")
_HELP = re.compile(r"^\s*(\?\??[\w.]+|[\w.]+\?\??)\s*$")


class SubmissionFormatError(Exception):
    """The file cannot be read as a submission at all (bad JSON, wrong nbformat, no code)."""


class ReductionFault(Exception):
    """The reduction to definitions turned text that parses into text that does not: a grader
    bug, never the student's syntax error."""


@dataclass
class SourceMap:
    """Line of the combined text -> (cell number or None, line within that cell)."""

    origins: list[tuple[int | None, int]] = field(default_factory=list)

    def label(self, line: int | None) -> str:
        if line is None or not 1 <= line <= len(self.origins):
            return f"line {line}"
        cell, within = self.origins[line - 1]
        return f"line {within}" if cell is None else f"cell {cell}, line {within}"


@dataclass
class SubmissionSource:
    """The text to analyse and run, where each line came from, and what was left out."""

    path: Path
    text: str
    lines: SourceMap
    is_notebook: bool
    removed: list[str] = field(default_factory=list)  # "cell 2, line 1: shell command `!pip ...` removed"
    notices: list[str] = field(default_factory=list)
    shell_bound: dict[str, str] = field(default_factory=dict)  # name -> where `name = !cmd` was


def read_submission(path: Path) -> SubmissionSource:
    """Read ``path`` (.py or .ipynb); raises :class:`SubmissionFormatError` with a plain message."""
    if path.suffix == ".ipynb":
        return _read_notebook(path)
    text = read_python(path)
    cleaned, removed, bound = _clean_ipython(line_texts(text), None)
    source = SubmissionSource(path, text, SourceMap([(None, n) for n in range(1, len(cleaned) + 1)]), False)
    if removed and _parses("\n".join(cleaned)):  # e.g. a script exported from Colab with `!pip` lines
        source.text, source.removed, source.shell_bound = "\n".join(cleaned) + "\n", removed, bound
    return source


_CODING = re.compile(r"^([ \t\f]*#.*?coding[:=][ \t]*)([-\w.]+)", re.MULTILINE)


def read_python(path: Path) -> str:
    """A ``.py`` file's text as Python reads it: the encoding its declaration or byte-order mark
    names (UTF-8 otherwise), without the mark. The text is later staged as UTF-8, so a
    declaration of another encoding is rewritten to say so (a comment; no line moves)."""
    raw = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
        text = raw.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):  # Python would refuse it; the parse says where
        encoding, text = "utf-8", raw.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    if encoding not in ("utf-8", "utf-8-sig"):
        head, newline, tail = text.partition("\n")
        second, newline2, tail = tail.partition("\n")
        head, second = (_CODING.sub(r"\1utf-8", line, count=1) for line in (head, second))
        text = head + newline + second + newline2 + tail
    return text


def code_cells(path: Path) -> list[tuple[int, str, int | None]]:
    """(cell number counted from the top including markdown, source, execution count) of
    every code cell; the number is what a student counts when scrolling the notebook."""
    return [(number, cell.source, cell.get("execution_count"))
            for number, cell in enumerate(load_notebook(path).cells, start=1) if cell.cell_type == "code"]


def notebook_cells(path: Path) -> list[tuple[int, str, str]]:
    """(cell number, cell type: "code", "markdown" or "raw", source) of every cell."""
    return [(number, cell.cell_type, cell.source) for number, cell in enumerate(load_notebook(path).cells, start=1)]


def load_notebook(path: Path):
    """The notebook at ``path`` (nbformat 4 node); raises SubmissionFormatError with a plain message."""
    import nbformat  # only needed for notebooks

    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))  # a byte-order mark is allowed
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SubmissionFormatError(f"{path.name} is not a readable notebook (invalid JSON: {error}). "
                                    "Open it in Jupyter and save it again, or submit a .py file.") from None
    major = raw.get("nbformat") if isinstance(raw, dict) else None
    if major not in (3, 4):  # nbformat converts version 3; anything else is not a Jupyter notebook we know
        raise SubmissionFormatError(f"{path.name} has nbformat version {major!r}; the grader reads version 4 "
                                    "notebooks (Jupyter, JupyterLab, Colab and VS Code all save it). Save the "
                                    "notebook again with a current Jupyter.")
    try:
        return nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as error:  # nbformat's own validation and conversion errors
        raise SubmissionFormatError(f"{path.name} could not be read as a notebook ({type(error).__name__}: "
                                    f"{error}). Save it again from Jupyter.") from None


def _read_notebook(path: Path) -> SubmissionSource:
    cells = code_cells(path)
    if not any(text.strip() for _, text, _ in cells):
        raise SubmissionFormatError(f"{path.name} has no code cells with code in them; put your "
                                    "functions in code cells (not markdown) and save the notebook.")
    source = SubmissionSource(path, "", SourceMap(), True)
    chunks = []
    for number, text, _ in cells:
        lines, removed, bound = _clean_ipython(line_texts(text.removeprefix("\ufeff")), number)
        source.removed += removed
        source.shell_bound |= bound
        error = _syntax_error("\n".join(lines))
        if error is not None:
            source.notices.append(f"Cell {number} has a syntax error at line {error.lineno} ({error.msg}: "
                                  f"`{(error.text or '').strip()}`); the grader skipped that whole cell, "
                                  "as Jupyter would fail only that cell. Fix it so that its code counts.")
            lines = [""] * len(lines)
        chunks += lines
        source.lines.origins += [(number, n) for n in range(1, len(lines) + 1)]
    source.text = "\n".join(chunks) + "\n"
    counts = [count for _, _, count in cells if isinstance(count, int)]
    if counts != sorted(counts):
        source.notices.append("Your notebook's cells were last run out of order (execution counts "
                              f"{', '.join(map(str, counts[:12]))}{' ...' if len(counts) > 12 else ''}); "
                              "the grader reads cells top to bottom, as Kernel > Restart & Run All does. "
                              "Do that before submitting to see what the grader sees.")
    return source


def _clean_ipython(lines: list[str], cell: int | None) -> tuple[list[str], list[str], dict[str, str]]:
    """Blank IPython-only syntax; returns (lines, what was removed, names bound by `x = !cmd`)."""
    where = (lambda n: f"line {n}") if cell is None else (lambda n: f"cell {cell}, line {n}")
    if _parses("\n".join(lines)):  # valid Python is never touched (a `%` inside a string stays)
        return lines, [], {}
    out, removed, bound = list(lines), [], {}
    first = lines[0].strip() if lines else ""
    if cell is not None and first.startswith("%%"):
        magic = first[2:].split()[0] if first[2:].split() else ""
        out[0] = ""
        if magic not in PYTHON_CELL_MAGICS:
            removed.append(f"{where(1)}: cell magic `{first[:60]}` and the whole cell removed")
            return [""] * len(lines), removed, bound
        removed.append(f"{where(1)}: cell magic `{first[:60]}` removed (its Python body is kept)")
    for index, line in enumerate(out):
        stripped = line.strip()
        assigned = _ASSIGNED_SHELL.match(line)
        if stripped.startswith(("!", "%")) or assigned or _HELP.match(line):
            if _HELP.match(line):
                kind = "help request"
            elif stripped.startswith("!") or assigned and line.split("=", 1)[1].lstrip().startswith("!"):
                kind = "shell command"
            else:
                kind = "IPython magic"
            removed.append(f"{where(index + 1)}: {kind} `{stripped[:60]}` removed")
            if assigned:
                for name in assigned.group(1).replace(" ", "").split(","):
                    bound[name] = where(index + 1)
            indent = line[:len(line) - len(line.lstrip())]
            out[index] = f"{indent}pass" if indent else ""
    return out, removed, bound


def _syntax_error(text: str) -> SyntaxError | None:
    try:
        ast.parse(text)
    except SyntaxError as error:
        return error
    return None


def _parses(text: str) -> bool:
    return _syntax_error(text) is None


@dataclass
class Prepared:
    """What runs (``run_text``) and how to speak about it in the student's own line numbers."""

    source: SubmissionSource
    run_text: str
    reduction: Reduction | None  # None when the whole file runs (top_level = "all")

    def label(self, line: int | None) -> str:
        return self.source.lines.label(line)

    def skipped(self) -> list[str]:
        """Every statement or line that will not run, in the student's terms."""
        found = list(self.source.removed)
        if self.reduction:
            found += [f"{self.label(s.line)}: {s.what} not run" for s in self.reduction.skipped if s.listed]
        return sorted(found, key=_natural)

    def set_only_by_skipped(self, name: str) -> str | None:
        """Where ``name`` is set, when only a statement that does not run sets it."""
        if self.reduction and name in self.reduction.only_skipped_set:
            statement = self.reduction.only_skipped_set[name]
            return f"{self.label(statement.line)}: {statement.what}"
        return self.source.shell_bound.get(name) and f"{self.source.shell_bound[name]}: a shell command"

    def notices(self, graded_names: tuple[str, ...]) -> list[str]:
        """Notes for the student; ``graded_names`` are the names the grader calls (a function
        they use that needs a skipped global is worth a warning, an unrelated one is not)."""
        found = list(self.source.notices)
        for definition, name in self.reduction.needs(graded_names) if self.reduction else []:
            found.append(f"`{definition}` uses `{name}`, which only a top-level statement the grader does not run "
                         f"sets ({self.set_only_by_skipped(name)}). The grader runs definitions only: build "
                         f"`{name}` inside your function, pass it in, or make it a simple constant.")
        return found

    def annotate(self, value) -> None:
        """In probe results (in place): name the student's cell and line in every error, and
        explain a NameError for a name only a skipped statement sets."""
        if isinstance(value, list):
            for item in value:
                self.annotate(item)
        elif isinstance(value, dict):
            if isinstance(value.get("traceback"), str) and "type" in value:
                self._annotate_error(value)
            for item in value.values():
                if isinstance(item, (list, dict)):
                    self.annotate(item)

    def _annotate_error(self, error: dict) -> None:
        where = error.get("where")
        if isinstance(where, dict) and where.get("file") in (None, f"{self.source.path.stem}.py", self.source.path.name):
            where["at"] = self.label(where.get("line"))
        missing = re.match(r"name '(\w+)' is not defined", str(error.get("message", "")))
        setter = missing and self.set_only_by_skipped(missing.group(1))
        if setter:
            error["hint"] = (f"`{missing.group(1)}` is set only by a top-level statement the grader does not run "
                             f"({setter}); the grader runs definitions only, so build it inside your function, "
                             "pass it in, or make it a simple constant")
        if self.source.is_notebook and isinstance(error.get("traceback"), str):
            pattern = rf'File "[^"]*?{re.escape(self.source.path.stem)}\.(?:py|ipynb)", line (\d+)'
            error["traceback"] = re.sub(pattern, lambda m: f'File "{self.source.path.name}", '
                                        f'{self.label(int(m.group(1)))}', error["traceback"])


def prepare(path: Path, top_level: str = "definitions") -> Prepared:
    """Read ``path`` and keep what should run: its definitions (default) or everything."""
    source = read_submission(path)
    if top_level == "all" or _syntax_error(source.text) is not None:
        return Prepared(source, source.text, None)  # a syntax error is reported by static analysis
    reduction = definitions_only(source.text)
    broken = _syntax_error(reduction.text)
    if broken is not None:
        raise ReductionFault(f"reducing {path.name} to its definitions broke code that parses (line "
                             f"{broken.lineno}: {broken.msg}); this is a grader bug, not the student's: "
                             "report it; the submission is graded again once it is fixed")
    return Prepared(source, reduction.text, reduction)


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
