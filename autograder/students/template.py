"""Student skeletons generated from the reference solutions.

In ``solutions/<assignment>.py`` a student region is marked::

    # BEGIN SOLUTION: compute the attention weights       (the hint after ':' is optional)
    ...reference code...
    # END SOLUTION

and becomes, at the same indentation, a TODO comment plus ``raise NotImplementedError(...)``
naming the enclosing function. A single line ``x = expr  # SOLUTION`` becomes
``x = None  # TODO: compute x``. A top-level region between ``# BEGIN WRITTEN ANALYSIS`` and
``# END WRITTEN ANALYSIS`` (the model answers to the spec's ``[analysis]`` questions) becomes
the string the students answer in, with the questions and a TODO under each
(:func:`autograder.submission.analysis.placeholder`). ``student_template/<assignment>/`` receives the skeleton, the
assignment's handout, and what :mod:`autograder.students.public` adds (the notebook, the public tests).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from autograder.spec import (
    ASSIGNMENTS_DIR,
    REPO_ROOT,
    SOLUTIONS_DIR,
    AnalysisSpec,
    SpecError,
    load_spec,
)
from autograder.students.public import same_cases, student_files
from autograder.submission.analysis import placeholder

TEMPLATE_DIR = REPO_ROOT / "student_template"
_BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION(?::\s*(.*))?$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_ONE_LINE = re.compile(r"^(\s*)([A-Za-z_][\w.\[\], ]*?)\s*=\s*.+?\s*# SOLUTION\s*$")
_ANALYSIS_BEGIN, _ANALYSIS_END = "# BEGIN WRITTEN ANALYSIS", "# END WRITTEN ANALYSIS"
_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)|^(\s*)class\s+(\w+)")


def skeleton(source: str, filename: str = "<solution>", analysis: AnalysisSpec | None = None) -> str:
    """The student version of a reference solution's text (``analysis``: the spec's questions,
    needed when the solution has a written-analysis region)."""
    lines, out = source.splitlines(), []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() == _ANALYSIS_BEGIN:
            end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == _ANALYSIS_END), None)
            if end is None or line != line.lstrip():
                raise SpecError(f"{filename}:{index + 1}: `{_ANALYSIS_BEGIN}` must start a top-level region "
                                f"closed by `{_ANALYSIS_END}`.")
            if analysis is None:
                raise SpecError(f"{filename}:{index + 1}: a written-analysis region, but the assignment's spec "
                                "has no [analysis] table. Fix: add one with the questions (see README).")
            out += placeholder(analysis).splitlines()
            index = end + 1
            continue
        begin = _BEGIN.match(line)
        if begin:
            end = next((j for j in range(index + 1, len(lines)) if _END.match(lines[j])), None)
            nested = next((j for j in range(index + 1, end or len(lines)) if _BEGIN.match(lines[j])), None)
            if end is None or nested is not None:
                raise SpecError(f"{filename}:{index + 1}: `# BEGIN SOLUTION` without a matching "
                                "`# END SOLUTION`. Fix: close every region before opening another.")
            indent, hint = begin.group(1), begin.group(2)
            where = _enclosing(lines, index)
            todo = hint or f"implement {where}"
            out += [f"{indent}# TODO: {todo}", f"{indent}raise NotImplementedError({f'{where}: {todo}'!r})"]
            index = end + 1
            continue
        if _END.match(line):
            raise SpecError(f"{filename}:{index + 1}: `# END SOLUTION` without a `# BEGIN SOLUTION`.")
        one = _ONE_LINE.match(line)
        if one:
            out.append(f"{one.group(1)}{one.group(2)} = None  # TODO: compute {one.group(2)}")
        elif "SOLUTION" in line and line.lstrip().startswith("#"):
            raise SpecError(f"{filename}:{index + 1}: unrecognised solution marker {line.strip()!r}.")
        else:
            out.append(line)
        index += 1
    text = "\n".join(out) + "\n"
    ast.parse(text, filename=f"skeleton of {filename}")  # a skeleton must at least import
    return text


def _enclosing(lines: list[str], index: int) -> str:
    """The def or class around line ``index``, as ``Class.method`` for a method."""
    depth = len(lines[index]) - len(lines[index].lstrip())
    names = []
    for line in reversed(lines[:index]):
        match = _DEF.match(line)
        indent = len(match.group(1) or match.group(3) or "") if match else depth
        if match and indent < depth:
            names.insert(0, match.group(2) or match.group(4))
            depth = indent
    return ".".join(names[-2:]) or "this part"


def planned_files(names: list[str] | None = None) -> dict[Path, str | bytes | Path]:
    """Every file of student_template/ (or of the named assignments' folders in it):
    generated text or bytes, or a path to copy."""
    files: dict[Path, str | bytes | Path] = {}
    for solution in sorted(SOLUTIONS_DIR.glob("*.py")):
        folder = ASSIGNMENTS_DIR / solution.stem
        if not (folder / "assignment.toml").is_file() or (names and solution.stem not in names):
            continue
        spec = load_spec(folder)
        target = TEMPLATE_DIR / solution.stem
        text = skeleton(solution.read_text(encoding="utf-8"), str(solution), spec.analysis)
        files[target / solution.name] = text
        if (folder / "handout.md").is_file():
            files[target / "handout.md"] = folder / "handout.md"
        for relative, content in student_files(spec, text).items():
            files[target / relative] = content
    return files


def regenerate(write: bool = True, names: list[str] | None = None) -> list[Path]:
    """Bring student_template/ (or the named assignments' folders in it) up to date; return the
    files that were (or would be) changed, including leftovers that are no longer generated
    (which are deleted)."""
    planned = planned_files(names)
    stale = []
    for path, content in planned.items():
        data = content.read_bytes() if isinstance(content, Path) else (
            content.encode("utf-8") if isinstance(content, str) else content)
        current = path.read_bytes() if path.is_file() else None
        if current == data or (current is not None and path.name == "cases.bin" and same_cases(current, data)):
            continue
        stale.append(path)
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    roots = [TEMPLATE_DIR / name for name in names] if names else [TEMPLATE_DIR]
    for path in sorted(p for root in roots if root.is_dir() for p in root.rglob("*")):
        if path.is_file() and path not in planned and not _is_cache(path):
            stale.append(path)
            if write:
                path.unlink()
    return stale


def _is_cache(path: Path) -> bool:
    return any(part in ("__pycache__", ".pytest_cache", ".ipynb_checkpoints") for part in path.parts)
