"""What an assignment's checks are made of: inputs, probe, verdict.

A check is a small class in ``assignments/<name>/checks.py`` (visible checks, which also
ship to students) or ``hidden_checks.py`` (everything else, grader only); either may grow into a
package, ``checks/`` or ``hidden_checks/``, with one module per concern::

    class Shapes(Check):
        name = "shapes"                       # the [[checks]] entry in assignment.toml

        def inputs(self, ctx):                # grading process: inputs the grader chose
            return {"Q": torch.randn(2, 3, 4, generator=ctx.generator())}

        @staticmethod
        def probe(student, inputs, device):   # worker process: calls the student's code
            return student.scaled_dot_product_attention(inputs["Q"], ...)

        def verdict(self, ctx, inputs, got, expected):   # grading process again
            return Verdict.ok("shapes match") if ... else Verdict.fail(...)

``expected`` is the same probe run on the reference solution in the grading process
(``None`` when ``needs_reference = False``). A probe returns plain data only (tensors,
numbers, strings, lists, dicts): see :mod:`autograder.sandbox.wire`.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.util
import sys
import types
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from autograder.spec import AssignmentSpec, CheckSpec, SpecError


@dataclass
class Verdict:
    """The outcome of one check; ``fraction`` is the share of its points earned."""

    passed: bool
    message: str
    fraction: float = 0.0
    expected: str | None = None
    got: str | None = None
    figures: list[bytes] = field(default_factory=list)  # PNG bytes, embedded in the report
    details: str | None = None  # instructor-only detail, e.g. a traceback

    @classmethod
    def ok(cls, message: str, **extra) -> Verdict:
        return cls(True, message, 1.0, **extra)

    @classmethod
    def fail(cls, message: str, *, fraction: float = 0.0, **extra) -> Verdict:
        return cls(False, message, max(0.0, min(1.0, fraction)), **extra)

    @classmethod
    def partial(cls, passed_cases: int, total_cases: int, message: str, **extra) -> Verdict:
        if passed_cases == total_cases:
            return cls.ok(message, **extra)
        return cls.fail(message, fraction=passed_cases / max(total_cases, 1), **extra)


@dataclass
class CheckContext:
    """What a check's grader-side code may use: spec values, the seed, the device."""

    spec: AssignmentSpec
    check: CheckSpec
    seed: int
    device: str

    def generator(self, salt: str = "") -> torch.Generator:
        """A CPU generator seeded from (grading seed, check name, salt): same inputs every regrade."""
        return torch.Generator().manual_seed(derive_seed(self.seed, self.check.name, salt))

    def threshold(self, key: str):
        """A number from the spec's [thresholds] table."""
        return self._spec_value("thresholds", key)

    def budget(self, key: str):
        """Counted work (trials, epochs, steps) from the spec's [budgets] table."""
        return self._spec_value("budgets", key)

    def _spec_value(self, table: str, key: str):
        values = getattr(self.spec, table)
        if key not in values:
            raise SpecError(f"{self.spec.toml_path}: [{table}] has no {key!r}, which check "
                            f"{self.check.name!r} needs. Fix: add `{key} = ...` under [{table}].")
        return values[key]


class Check:
    """Base class of a runtime check (see module docstring)."""

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = True

    def inputs(self, ctx: CheckContext) -> dict:
        return {}

    @staticmethod
    def probe(student, inputs: dict, device: str) -> Any:
        raise NotImplementedError

    def verdict(self, ctx: CheckContext, inputs: dict, got: Any, expected: Any) -> Verdict:
        raise NotImplementedError


class StaticCheck(Check):
    """A check decided from the submission's syntax tree alone; nothing runs."""

    needs_reference = False

    def verdict_static(self, ctx: CheckContext, analysis) -> Verdict:
        raise NotImplementedError


def derive_seed(seed: int, *parts: str) -> int:
    """A stable 31-bit seed from the grading seed and names (Python's hash() is salted)."""
    return zlib.crc32(":".join([str(seed), *parts]).encode()) & 0x7FFFFFFF


def import_text(text: str, module_name: str, filename: str):
    """Import trusted Python source text as a module (a known bug or calibration alternative)."""
    module = types.ModuleType(module_name)
    module.__file__ = filename
    sys.modules[module_name] = module
    exec(compile(text, filename, "exec"), module.__dict__)  # noqa: S102 - instructor-written code
    return module


def import_file(path: Path, module_name: str):
    """Import a trusted Python file by path (reference solutions)."""
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


VISIBLE, HIDDEN = "checks", "hidden_checks"  # a module (checks.py) or a package (checks/) each


def check_files(folder: Path) -> list[str]:
    """The assignment's check modules, relative to its folder: ``checks.py`` or every module of
    a ``checks/`` package (visible checks, which ship to students), then the same for
    ``hidden_checks`` (grader only)."""
    found = []
    for stem in (VISIBLE, HIDDEN):
        if (folder / f"{stem}.py").is_file():
            found.append(f"{stem}.py")
        elif (folder / stem / "__init__.py").is_file():
            found += sorted(path.relative_to(folder).as_posix() for path in (folder / stem).glob("*.py"))
    return found


def module_name(relative: str) -> str:
    """``checks/decoding.py`` -> ``checks.decoding``; ``checks/__init__.py`` -> ``checks``."""
    return relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def ships_to_students(relative: str) -> bool:
    return module_name(relative).split(".")[0] == VISIBLE


def load_check_classes(folder: Path, assignment: str) -> dict[str, tuple[type[Check], str]]:
    """Every Check subclass in the assignment's check modules, by check name, with the file
    it lives in. The folder is imported as a package, so hidden checks may reuse
    `from .checks.decoding import ...` and a checks package its own modules."""
    package, folder = f"_assignment_{assignment}", folder.resolve()
    if list(getattr(sys.modules.get(package), "__path__", [])) != [str(folder)]:
        for loaded in [name for name in sys.modules if name == package or name.startswith(f"{package}.")]:
            del sys.modules[loaded]  # another folder of the same name (a copy under test) was loaded
        module = types.ModuleType(package)
        module.__path__ = [str(folder)]
        sys.modules[package] = module
    files = check_files(folder)
    return _check_classes({relative: importlib.import_module(f"{package}.{module_name(relative)}")
                           for relative in files})


GRADER_ONLY_METHODS = ("inputs", "verdict", "verdict_static")


def probe_sources(folder: Path) -> dict[str, str]:
    """The check modules as the worker receives them, in its job: with every check's
    grader-side methods (how inputs are made from hidden data, how a result is judged) taken
    out, so that student code, which shares the worker's process, never holds them."""
    sources = {}
    for relative in check_files(folder):
        tree = ast.parse((folder / relative).read_text(encoding="utf-8"), relative)
        sources[relative] = ast.unparse(_ProbesOnly().visit(tree))
    return sources


class _ProbesOnly(ast.NodeTransformer):
    def visit_ClassDef(self, node: ast.ClassDef) -> ast.ClassDef:
        self.generic_visit(node)
        node.body = [item for item in node.body if not (
            isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in GRADER_ONLY_METHODS)]
        node.body = node.body or [ast.Pass()]
        return node


def load_probe_sources(sources: dict[str, str], assignment: str) -> dict[str, tuple[type[Check], str]]:
    """:func:`load_check_classes` for :func:`probe_sources` (in the worker: no files needed)."""
    package = f"_assignment_{assignment}"
    sys.meta_path.insert(0, _SourceFinder(package, sources))
    return _check_classes({relative: importlib.import_module(f"{package}.{module_name(relative)}")
                           for relative in sources})


class _SourceFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``<package>`` and its check modules from source text, so relative imports
    between them work in the worker as they do from the folder."""

    def __init__(self, package: str, sources: dict[str, str]):
        self.package = package
        self.sources = {f"{package}.{module_name(relative)}": (relative, text) for relative, text in sources.items()}

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.package:
            return importlib.util.spec_from_loader(fullname, self, is_package=True)
        if fullname in self.sources:
            relative = self.sources[fullname][0]
            return importlib.util.spec_from_loader(fullname, self, origin=f"<grader>/{relative}",
                                                   is_package=relative.endswith("/__init__.py"))
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__ in self.sources:
            relative, text = self.sources[module.__name__]
            module.__file__ = f"<grader>/{relative}"
            exec(compile(text, module.__file__, "exec"), module.__dict__)  # noqa: S102 - grader code


def _check_classes(modules: dict[str, types.ModuleType]) -> dict[str, tuple[type[Check], str]]:
    found: dict[str, tuple[type[Check], str]] = {}
    for filename, module in modules.items():
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Check) and value.__module__ == module.__name__
                    and getattr(value, "name", None)):
                found[value.name] = (value, filename)
    return found


def load_checks(spec: AssignmentSpec) -> dict[str, Check]:
    """Instantiate the check classes for every [[checks]] entry; complain about mismatches."""
    classes = load_check_classes(spec.folder, spec.name)
    missing = [check.name for check in spec.checks if check.name not in classes]
    if missing:
        raise SpecError(f"{spec.toml_path}: checks {missing} have no implementation in "
                        f"{spec.folder}/checks or hidden_checks. Fix: add a Check subclass "
                        f"with `name = {missing[0]!r}`, or remove the [[checks]] entry.")
    unused = sorted(set(classes) - {check.name for check in spec.checks})
    if unused:
        raise SpecError(f"{spec.toml_path}: {unused} are implemented but not declared. Fix: add a "
                        f"[[checks]] entry for each (name, title, points).")
    for check in spec.checks:
        filename = classes[check.name][1]
        if check.visibility != "visible" and ships_to_students(filename):
            raise SpecError(f"{spec.folder / filename}: check {check.name!r} has visibility {check.visibility!r} but lives "
                            f"in {filename}, which ships to students. Fix: move it to hidden_checks.py (or a module "
                            "of a hidden_checks/ package).")
    return {check.name: classes[check.name][0]() for check in spec.checks}


class NoForbiddenCalls(StaticCheck):
    """Passes when none of the spec's [forbidden] calls is used within its scope."""

    def verdict_static(self, ctx: CheckContext, analysis) -> Verdict:
        if analysis.syntax_error:
            return Verdict.fail("not checked: the file has a syntax error")
        if analysis.forbidden:
            uses = "; ".join(use.describe() for use in analysis.forbidden)
            return Verdict.fail(f"found {len(analysis.forbidden)} forbidden call(s): {uses}. "
                                "This assignment asks for these pieces written by hand",
                                expected="none of: " + ", ".join(ctx.spec.forbidden.calls),
                                got=", ".join(sorted({use.name for use in analysis.forbidden})))
        scope = ", ".join(f"`{name}`" for name in ctx.spec.forbidden.scope) or "the file"
        return Verdict.ok(f"no forbidden calls in {scope} or the helpers they use")
