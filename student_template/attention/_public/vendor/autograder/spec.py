"""Stage 1, spec: read an assignment's TOML into frozen dataclasses.

A malformed spec stops with ``file:line: key: what is wrong. Fix: ...``; the structure is
checked against a JSON schema (``outputs/schemas/assignment.schema.json``) and the line is found by
looking the offending key up in the TOML text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENTS_DIR = REPO_ROOT / "assignments"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
STUDENT_LIBRARIES = Path(__file__).resolve().parent / "student_libraries.txt"


def student_requirements() -> dict[str, str]:
    """Import name -> requirement (``seaborn>=0.12``), from student_libraries.txt."""
    lines = (line.split("#", 1)[0].strip() for line in STUDENT_LIBRARIES.read_text(encoding="utf-8").splitlines())
    return {re.match(r"[A-Za-z0-9_.-]+", line).group(0): line for line in lines if line}


DEFAULT_ALLOWED_IMPORTS = tuple(student_requirements())  # torch, numpy, matplotlib, seaborn, pandas, tqdm, einops
TOP_LEVEL = ("definitions", "all")


class SpecError(Exception):
    """The assignment spec cannot be used; the message names file, line, key and a fix."""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    title: str
    points: float
    visibility: str = "visible"
    timeout_s: float = 30.0
    partial: bool = False
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    import_timeout_s: float = 60.0
    memory_mb: int = 4096
    output_kb: int = 64
    result_mb: int = 256
    torch_threads: int = 1
    max_processes: int = 64  # processes and threads of the whole worker tree (cgroup, else RLIMIT_NPROC)
    tmp_mb: int = 256  # size of the sandbox's /tmp and of its /dev/shm
    file_mb: int = 512  # the largest file the worker may write (RLIMIT_FSIZE)


@dataclass(frozen=True)
class Forbidden:
    calls: tuple[str, ...] = ()
    scope: tuple[str, ...] = ()  # top-level functions/classes; empty means the whole file


@dataclass(frozen=True)
class AnalysisSpec:
    """Written answers collected for manual grading (see autograder/submission/analysis.py); no points."""
    questions: tuple[str, ...]
    title: str = "Written analysis"  # a notebook markdown cell whose first line is this heading
    variable: str = "WRITTEN_ANALYSIS"  # a module-level string of that name
    files: tuple[str, ...] = ("analysis.md", "analysis.txt")  # beside the submission, in a folder


@dataclass(frozen=True)
class AssignmentSpec:
    name: str
    title: str
    folder: Path
    toml_path: Path
    submission_stem: str
    required_names: tuple[str, ...]
    checks: tuple[CheckSpec, ...]
    seed: int = 0
    allowed_imports: tuple[str, ...] = DEFAULT_ALLOWED_IMPORTS
    forbidden: Forbidden = field(default_factory=Forbidden)
    limits: Limits = field(default_factory=Limits)
    thresholds: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=dict)
    results_visibility: str = "visible"
    top_level: str = "definitions"  # what of a submission runs at import: see autograder/submission/reduce.py
    analysis: AnalysisSpec | None = None

    @property
    def max_score(self) -> float:
        return sum(check.points for check in self.checks)

    @property
    def reference_path(self) -> Path:
        return SOLUTIONS_DIR / f"{self.submission_stem}.py"

    def check(self, name: str) -> CheckSpec:
        return next(check for check in self.checks if check.name == name)


def find_assignment(name_or_path: str | Path) -> Path:
    """Resolve an assignment name (``attention``) or a folder/TOML path to its TOML file."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate.resolve()
    if candidate.is_dir() and (candidate / "assignment.toml").is_file():
        return (candidate / "assignment.toml").resolve()
    by_name = ASSIGNMENTS_DIR / str(name_or_path) / "assignment.toml"
    if by_name.is_file():
        return by_name
    known = sorted(p.parent.name for p in ASSIGNMENTS_DIR.glob("*/assignment.toml"))
    raise SpecError(f"no assignment called {str(name_or_path)!r}; known: {', '.join(known) or 'none'}")


def load_spec(name_or_path: str | Path) -> AssignmentSpec:
    # Imported here: the students' public tests use this module's dataclasses without them.
    import jsonschema
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    schema = json.loads((Path(__file__).parent / "outputs" / "schemas" / "assignment.schema.json").read_text())
    path = find_assignment(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}. Fix the syntax at that line.") from None

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if error is not None:
        keys = list(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = re.findall(r"'([^']+)' was unexpected", error.message)
            keys += extra[:1]
        raise SpecError(_located(path, text, keys, error.message, _fix_for(error)))

    meta = data["assignment"]
    checks = tuple(_check_spec(entry) for entry in data["checks"])
    _check_consistency(path, text, meta, checks)
    limits, forbidden = data.get("limits", {}), data.get("forbidden", {})
    return AssignmentSpec(
        name=meta["name"],
        title=meta["title"],
        folder=path.parent,
        toml_path=path,
        submission_stem=meta.get("submission", meta["name"]),
        required_names=tuple(meta["required_names"]),
        checks=checks,
        seed=meta.get("seed", 0),
        allowed_imports=tuple(meta.get("allowed_imports", DEFAULT_ALLOWED_IMPORTS)),
        forbidden=Forbidden(tuple(forbidden.get("calls", ())), tuple(forbidden.get("scope", ()))),
        limits=Limits(**limits),
        thresholds=dict(data.get("thresholds", {})),
        budgets=dict(data.get("budgets", {})),
        results_visibility=meta.get("results_visibility", "visible"),
        top_level=meta.get("top_level", "definitions"),
        analysis=_analysis_spec(data.get("analysis")),
    )


def _analysis_spec(entry: dict | None) -> AnalysisSpec | None:
    if entry is None:
        return None
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}
    return AnalysisSpec(**values)


def _check_spec(entry: dict) -> CheckSpec:
    values = dict(entry)
    values["depends_on"] = tuple(values.get("depends_on", ()))
    values["tags"] = tuple(values.get("tags", ()))
    return CheckSpec(**values)


def _check_consistency(path: Path, text: str, meta: dict, checks: tuple[CheckSpec, ...]) -> None:
    seen: set[str] = set()
    for index, check in enumerate(checks):
        if check.name in seen:
            raise SpecError(_located(path, text, ["checks", index, "name"],
                                     f"check name {check.name!r} is used twice",
                                     "give every check a unique name"))
        seen.add(check.name)
    names = {check.name for check in checks}
    for index, check in enumerate(checks):
        for needed in check.depends_on:
            if needed not in names or needed == check.name:
                raise SpecError(_located(path, text, ["checks", index, "depends_on"],
                                         f"depends on {needed!r}, which is not another check",
                                         f"use one of: {', '.join(sorted(names - {check.name}))}"))
    if meta["name"] != path.parent.name:
        raise SpecError(_located(path, text, ["assignment", "name"],
                                 f"name {meta['name']!r} differs from its folder {path.parent.name!r}",
                                 "rename one so that they match"))


def _fix_for(error) -> str:  # a jsonschema.ValidationError
    if error.validator == "required":
        return "add the missing key"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"remove or rename it; allowed keys here: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"use one of: {', '.join(map(str, error.validator_value))}"
    if error.validator == "type":
        return f"write a value of type {error.validator_value}"
    if error.validator in ("minimum", "exclusiveMinimum"):
        return f"use a value above {error.validator_value}"
    return "see docs/authoring.md and README.md (Writing an assignment) for the spec format"


def _located(path: Path, text: str, keys: list, message: str, fix: str) -> str:
    dotted = ".".join(f"[{k}]" if isinstance(k, int) else str(k) for k in keys).replace(".[", "[")
    line = _line_of(text, keys)
    where = f"{path}:{line}" if line else str(path)
    return f"{where}: {dotted or '(top level)'}: {message}. Fix: {fix}."


def _line_of(text: str, keys: list) -> int | None:
    """Best-effort line number of ``keys`` (e.g. ["checks", 2, "points"]) in TOML text."""
    if not keys:
        return None
    table, rest = keys[0], keys[1:]
    index = rest.pop(0) if rest and isinstance(rest[0], int) else None
    key = rest[0] if rest else None
    header_line, count, inside = None, -1, False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            name = header.group(1)
            if name == table:
                count += 1 if line.startswith("[[") else 0
                inside = index is None or count == index
                if inside:
                    header_line = number
            else:
                inside = False
            continue
        if inside and key is not None and re.match(rf"{re.escape(str(key))}\s*=", line):
            return number
        if header_line is None and index is None and re.match(rf"{re.escape(str(table))}\s*=", line):
            return number
    return header_line
