"""Static analysis of a submission's source: read its syntax tree, never run it.

Finds syntax errors, which required names are missing, which imports need a stand-in or a
placeholder in the worker (see :mod:`autograder.sandbox.substitutes`), and uses of forbidden calls. A forbidden name is caught however
it was imported (``import torch.nn.functional as F``, ``from torch.nn import
MultiheadAttention as M``, a module-level alias ``sdpa = F.scaled_dot_product_attention``),
and within a scope the search follows the file's own helper functions and classes that the
scope refers to. Comments and strings never count.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from autograder.sandbox.substitutes import logging_tool


@dataclass(frozen=True)
class ForbiddenUse:
    name: str  # the forbidden call as the spec lists it
    line: int
    code: str  # the expression as written
    within: str  # the top-level function/class it appears in ('<module>' for the file level)
    reached_from: str | None = None  # the scoped name that leads to `within`, when different
    file: str | None = None  # set for a folder submission's helper module
    at: str | None = None  # "cell 4, line 3" in a notebook

    def describe(self) -> str:
        via = f" (called from `{self.reached_from}`)" if self.reached_from else ""
        where = f"{self.file}, line {self.line}" if self.file else self.at or f"line {self.line}"
        return f"{where}, in `{self.within}`{via}: `{self.code}` uses `{self.name}`"


@dataclass
class StaticAnalysis:
    syntax_error: dict | None = None  # {"line", "at", "column", "message", "code"}
    defined: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    stand_ins: dict[str, int | str] = field(default_factory=dict)  # logging tool -> line (then "cell 2, line 1")
    placeholders: dict[str, int | str] = field(default_factory=dict)  # unavailable top-level module -> line
    forbidden: list[ForbiddenUse] = field(default_factory=list)


def analyse(source: str, filename: str, *, required: tuple[str, ...], allowed_imports: tuple[str, ...],
            forbidden: tuple[str, ...], scope: tuple[str, ...], local_modules: tuple[str, ...] = ()) -> StaticAnalysis:
    """``local_modules``: the other modules of a folder submission, which it may import."""
    result = StaticAnalysis()
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        result.syntax_error = {"line": error.lineno, "column": error.offset, "message": error.msg,
                               "code": (error.text or "").strip()}
        result.missing = list(required)
        return result
    top_level = _top_level_definitions(tree)
    result.defined = set(top_level) | _top_level_assigned(tree)
    result.missing = [name for name in required if name not in result.defined]
    result.stand_ins, result.placeholders = _substituted_imports(tree, allowed_imports, local_modules)
    if forbidden:
        result.forbidden = _forbidden_uses(source, tree, top_level, forbidden, scope)
    return result


def _top_level_definitions(tree: ast.Module) -> dict[str, ast.AST]:
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {node.name: node for node in tree.body if isinstance(node, kinds)}


def _top_level_assigned(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.Name):
                names.add(target.id)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _substituted_imports(tree: ast.Module, allowed: tuple[str, ...], local: tuple[str, ...]) -> tuple[dict, dict]:
    """(logging tool -> first line, module -> first line): the imports that get a stand-in (wandb,
    google.colab, ...; wherever they are) and those that get a placeholder: modules outside the
    allowed list and the standard library, or allowed but not installed here. An import guarded
    by ``try: ... except ImportError`` keeps its real outcome (the file handles a missing module
    itself), and one in an ``if __name__ == "__main__":`` block never runs."""
    ok = set(allowed) | set(sys.stdlib_module_names) | {"__future__"}
    guarded, never_run = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _catches_import_error(node):
            guarded.update(id(inner) for child in node.body for inner in ast.walk(child))
        if _is_main_guard(node):
            never_run.update(id(inner) for child in node.body for inner in ast.walk(child))
    stand_ins, placeholders = {}, {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]  # `from torch.utils import tensorboard`
        else:
            continue
        if id(node) in never_run:
            continue
        tools = [tool for tool in map(logging_tool, modules) if tool]
        for tool in tools:
            stand_ins.setdefault(tool, node.lineno)
        root = modules[0].split(".")[0]
        if not tools and id(node) not in guarded and root not in local and (root not in ok or not _installed(root)):
            placeholders.setdefault(root, node.lineno)
    return stand_ins, placeholders


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.type is None or any(isinstance(n, ast.Name) and n.id in (
                "ImportError", "ModuleNotFoundError", "Exception", "BaseException") for n in names):
            return True
    return False


def import_aliases(tree: ast.Module, forbidden: tuple[str, ...]) -> dict[str, str]:
    """Local name -> fully qualified name, from every import in the file and simple aliases."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                if alias.name == "*":  # `from torch.nn import *`: bare names may be forbidden ones
                    for name in forbidden:
                        if name.rsplit(".", 1)[0] == node.module:
                            names[name.rsplit(".", 1)[1]] = name
                else:
                    names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    for node in tree.body:  # module-level `sdpa = F.scaled_dot_product_attention`
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            resolved = qualified_name(node.value, names)
            if resolved:
                names[node.targets[0].id] = resolved
    return names


def qualified_name(node: ast.AST, names: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in names:
        return ".".join([names[node.id], *reversed(parts)])
    return None


def _matches(qualified: str, forbidden: tuple[str, ...]) -> str | None:
    for name in forbidden:
        if qualified == name or qualified.startswith(name + "."):
            return name
    return None


def _forbidden_uses(source: str, tree: ast.Module, top_level: dict[str, ast.AST],
                    forbidden: tuple[str, ...], scope: tuple[str, ...]) -> list[ForbiddenUse]:
    names = import_aliases(tree, forbidden)
    if scope:
        roots = {name: name for name in scope if name in top_level}
        reached = dict(roots)  # definition name -> the scoped name that reaches it
        frontier = list(roots)
        while frontier:  # follow references to the file's own helpers
            current = frontier.pop()
            for node in ast.walk(top_level[current]):
                if isinstance(node, ast.Name) and node.id in top_level and node.id not in reached:
                    reached[node.id] = reached[current]
                    frontier.append(node.id)
        regions = [(name, top_level[name], reached[name]) for name in reached]
    else:  # the whole file, each use still named by the definition it sits in
        regions = [(name, node, name) for name, node in top_level.items()]
        regions += [("<module>", node, "<module>") for node in tree.body if node not in top_level.values()]
    uses, seen = [], set()
    for within, region, root in regions:
        for node in ast.walk(region):  # breadth first: `a.b.c` is met before its inner `a.b`
            if not isinstance(node, (ast.Attribute, ast.Name)) or isinstance(node.ctx, ast.Store):
                continue
            qualified = qualified_name(node, names)
            hit = qualified and _matches(qualified, forbidden)
            if hit and (node.lineno, node.col_offset, hit) not in seen:
                seen.add((node.lineno, node.col_offset, hit))
                code = ast.get_source_segment(source, node) or qualified
                uses.append(ForbiddenUse(hit, node.lineno, code, within, None if root == within else root))
    return sorted(uses, key=lambda use: (use.line, use.name))


def forbidden_in_helper(source: str, filename: str, forbidden: tuple[str, ...]) -> list[ForbiddenUse]:
    """Forbidden uses anywhere in a folder submission's helper module (it exists only to serve
    the graded code, so the whole file is in scope). A helper that does not parse is left to
    the import, which reports it."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError:
        return []
    uses = _forbidden_uses(source, tree, _top_level_definitions(tree), forbidden, scope=())
    return [dataclasses.replace(use, file=filename) for use in uses]


def analyse_submission(spec, prepared, helpers: list[Path]) -> StaticAnalysis:
    """Everything above for a prepared submission (see :mod:`autograder.submission.source`) and the
    helper modules of a folder submission, with lines named as the student sees them."""
    from autograder.submission.source import (
        read_python,  # source imports this module (through reduce)
    )

    local_modules = tuple(path.stem for path in helpers)  # a folder submission's own modules
    analysis = analyse(prepared.run_text, prepared.source.path.name, required=spec.required_names,
                       allowed_imports=spec.allowed_imports, local_modules=local_modules, forbidden=spec.forbidden.calls,
                       scope=spec.forbidden.scope)
    analysis.forbidden = [dataclasses.replace(use, at=prepared.label(use.line)) for use in analysis.forbidden]
    for helper in helpers:
        text = read_python(helper)
        analysis.forbidden += forbidden_in_helper(text, helper.name, spec.forbidden.calls)
        try:  # a helper's imports get stand-ins and placeholders too, named by its file
            found = _substituted_imports(ast.parse(text), spec.allowed_imports, local_modules)
        except SyntaxError:
            continue  # its import reports the error
        for mine, theirs in zip((analysis.stand_ins, analysis.placeholders), found, strict=True):
            for module, line in theirs.items():
                mine.setdefault(module, f"{helper.name}, line {line}")
    if analysis.syntax_error:
        analysis.syntax_error["at"] = prepared.label(analysis.syntax_error["line"])
    analysis.stand_ins = {module: prepared.label(line) if isinstance(line, int) else line
                          for module, line in analysis.stand_ins.items()}
    analysis.placeholders = {module: prepared.label(line) if isinstance(line, int) else line
                             for module, line in analysis.placeholders.items()}
    return analysis


def notices(analysis: StaticAnalysis, prepared) -> list[str]:
    """Submission-wide messages for the student."""
    found = []
    if analysis.syntax_error:
        error = analysis.syntax_error
        found.append(f"Syntax error at {error['at']}: {error['message']} (`{error['code']}`); nothing could run.")
    if analysis.placeholders:
        listed = ", ".join(f"`{module}` ({at})" for module, at in analysis.placeholders.items())
        found.append(f"Not available in the grading environment, so a placeholder stands in for it: {listed}. "
                     "Only the checks whose code uses it fail, with a message naming it; use only the "
                     "libraries the handout lists.")
    if analysis.stand_ins:
        listed = ", ".join(f"`{module}` ({at})" for module, at in analysis.stand_ins.items())
        found.append(f"Logging and display tools do nothing while grading (stand-ins accept every call): {listed}.")
    if analysis.missing and not analysis.syntax_error:
        found.append("Not defined at the top level: " + ", ".join(f"`{name}`" for name in analysis.missing) + ".")
        for name in analysis.missing:
            setter = prepared.set_only_by_skipped(name)
            if setter:
                found.append(f"`{name}` is set only by a top-level statement the grader does not run ({setter}); "
                             f"define `{name}` with `def` (or a simple assignment) instead.")
    return found


def substitutes(analysis: StaticAnalysis, spec) -> dict:
    """The arguments of :func:`autograder.sandbox.substitutes.install` for this submission."""
    return {"stand_ins": dict(analysis.stand_ins), "placeholders": dict(analysis.placeholders),
            "offered": tuple(spec.allowed_imports)}


def blocker(analysis: StaticAnalysis) -> str | None:
    """Why nothing can run at all, in one sentence (every runtime check then says it)."""
    if analysis.syntax_error:
        return f"your file has a syntax error at {analysis.syntax_error['at']}"
    return None
