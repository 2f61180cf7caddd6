"""Keeping only a submission's definitions, statement by statement (never cell by cell).

Kept at the top level: imports, functions, classes, docstrings, assignments whose value is a
constant or a simple expression (names, arithmetic, containers, comprehensions, lambdas, and
calls to a short list of cheap constructors such as ``torch.device`` or ``range``), and
``if``/``try`` blocks made only of such statements. Everything else — calls such as
``train(model)`` or ``plt.show()``, loops, ``with`` blocks, assignments that call the
student's own code — is replaced by ``pass`` and listed, so a training loop at the bottom of
a script or notebook never runs. A statement that needs a name only a skipped statement sets
is skipped too. Line numbers do not change.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

from autograder.submission.static import import_aliases, qualified_name

SAFE_BUILTINS = frozenset({
    "range", "len", "enumerate", "zip", "sorted", "reversed", "list", "dict", "set", "tuple",
    "frozenset", "str", "int", "float", "bool", "bytes", "min", "max", "sum", "abs", "round",
    "ord", "chr", "isinstance", "repr", "slice", "object", "type", "complex", "divmod", "pow",
})
SAFE_CALLS = frozenset({
    "torch.device", "torch.cuda.is_available", "torch.backends.mps.is_available", "torch.tensor",
    "torch.as_tensor", "torch.finfo", "torch.iinfo", "numpy.array", "numpy.asarray", "numpy.finfo",
    "numpy.sqrt", "numpy.log", "numpy.exp",
    "collections.namedtuple", "collections.OrderedDict", "collections.defaultdict", "collections.Counter",
    "typing.TypeVar", "typing.NamedTuple", "dataclasses.field", "functools.partial", "re.compile",
    "os.path.join", "os.getenv", "os.environ.get", "pathlib.Path", "logging.getLogger",
})
SAFE_PREFIXES = ("math.", "string.", "typing.")
_NN_MODULE = re.compile(r"^torch\.nn\.[A-Z]\w*$")  # nn.CrossEntropyLoss(), nn.Linear(4, 2): cheap


@dataclass
class Skipped:
    """A top-level statement that was not run."""

    line: int
    what: str  # "top-level call `train(...)`"
    binds: tuple[str, ...]
    listed: bool = True  # `if __name__ == "__main__":` never runs on import anyway: not listed


@dataclass
class Reduction:
    text: str
    skipped: list[Skipped] = field(default_factory=list)
    only_skipped_set: dict[str, Skipped] = field(default_factory=dict)  # name -> statement that sets it
    globals_used: dict[str, set[str]] = field(default_factory=dict)  # top-level def -> globals it reads

    def needs(self, roots: tuple[str, ...]) -> list[tuple[str, str]]:
        """(definition, name) for each definition reachable from ``roots`` (the names the grader
        calls, and the helpers they use) that reads a global only a skipped statement sets."""
        reached, frontier = set(), [root for root in roots if root in self.globals_used]
        while frontier:
            current = frontier.pop()
            if current not in reached:
                reached.add(current)
                frontier += [name for name in self.globals_used[current] if name in self.globals_used]
        return [(definition, name) for definition in sorted(reached)
                for name in sorted(self.globals_used[definition] & set(self.only_skipped_set))]


def definitions_only(text: str) -> Reduction:
    """``text`` must parse. Returns the reduced text and what was skipped."""
    tree = ast.parse(text)
    aliases = import_aliases(tree, ())
    own = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    reduction = Reduction(text)
    skipped_nodes = []
    kept_bound: set[str] = set()
    skipped_bound: dict[str, Skipped] = {}
    for node in tree.body:
        what = _why_skipped(node, aliases, own)
        if what is None:
            needed = [name for name in _evaluated_names(node) if name in skipped_bound and name not in kept_bound]
            if needed:
                what = f"{_describe(node)}, which needs `{needed[0]}` from a skipped statement"
        if what is None:
            kept_bound |= _bound_names(node)
            continue
        skipped = Skipped(node.lineno, what, tuple(sorted(_bound_names(node))), listed=not _is_main_guard(node))
        reduction.skipped.append(skipped)
        for name in skipped.binds:
            skipped_bound[name] = skipped
        skipped_nodes.append(node)
    reduction.text = _replace_with_pass(text, skipped_nodes)
    reduction.only_skipped_set = {name: s for name, s in skipped_bound.items() if name not in kept_bound}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            reduction.globals_used[node.name] = _global_uses(node)  # the last definition wins
    return reduction


def _why_skipped(node: ast.stmt, aliases: dict, own: set) -> str | None:
    """None when ``node`` is a definition to keep; otherwise what it is, for the report."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Pass)):
        return None
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return None  # a docstring
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        plain = all(isinstance(target, (ast.Name, ast.Tuple, ast.List, ast.Starred, ast.Subscript))
                    for target in targets)  # not `torch.backends.x = ...`: no changing library state
        if plain and (node.value is None or _is_simple(node.value, aliases, own)):
            return None
        return f"assignment `{_short(node)}`"
    if isinstance(node, ast.If) and not _is_main_guard(node) and _is_simple(node.test, aliases, own) \
            and all(_why_skipped(inner, aliases, own) is None for inner in node.body + node.orelse):
        return None
    if isinstance(node, ast.Try) and all(_why_skipped(inner, aliases, own) is None for inner in
                                         node.body + node.orelse + node.finalbody
                                         + [s for h in node.handlers for s in h.body]):
        return None
    return _describe(node)


def _describe(node: ast.stmt) -> str:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return f"top-level call `{_short(node.value.func)}(...)`"
    if isinstance(node, ast.Expr):
        return f"expression `{_short(node)}`"
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return f"assignment `{_short(node)}`"
    if _is_main_guard(node):
        return "`if __name__ == \"__main__\":` block"
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)):
        return f"loop `{_short(node)}`"
    if isinstance(node, (ast.With, ast.If, ast.Try)):
        return f"`{type(node).__name__.lower()}` block `{_short(node)}`"
    return f"`{type(node).__name__.lower()}` statement `{_short(node)}`"


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).splitlines()[0]
    return text if len(text) <= 60 else text[:57] + "..."


def _is_simple(node: ast.expr, aliases: dict, own: set) -> bool:
    """No calls except cheap known constructors; lambda bodies are not evaluated, so they count."""
    for sub in _walk_evaluated(node):
        if isinstance(sub, (ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
        if isinstance(sub, ast.Call) and not _is_safe_call(sub, aliases, own):
            return False
    return True


def _is_safe_call(call: ast.Call, aliases: dict, own: set) -> bool:
    func = call.func
    if isinstance(func, ast.Name) and func.id not in aliases and func.id not in own:
        return func.id in SAFE_BUILTINS
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Constant):
        return True  # "a b".split(), ", ".join(...)
    qualified = qualified_name(func, aliases) or ""
    return qualified in SAFE_CALLS or qualified.startswith(SAFE_PREFIXES) or bool(_NN_MODULE.match(qualified))


def _walk_evaluated(node: ast.AST):
    """ast.walk, without descending into code that a statement defines but does not run."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, ast.Lambda):
            stack.extend(current.args.defaults + [d for d in current.args.kw_defaults if d])
        elif isinstance(current, (ast.FunctionDef, ast.AsyncFunctionDef)):
            stack.extend(current.decorator_list + current.args.defaults + [d for d in current.args.kw_defaults if d])
        elif isinstance(current, ast.ClassDef):
            stack.extend(current.decorator_list + current.bases + [k.value for k in current.keywords])
        else:
            stack.extend(ast.iter_child_nodes(current))


def _evaluated_names(node: ast.stmt) -> set[str]:
    """Names a statement reads when it runs (comprehension variables excluded)."""
    loads = {sub.id for sub in _walk_evaluated(node) if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)}
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        loads.add(node.target.id)  # `x += 1` reads x
    return loads - _comprehension_variables(node)


def _bound_names(node: ast.stmt) -> set[str]:
    """Top-level names a statement sets (not those inside the functions it defines)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    names = set()
    for sub in _walk_evaluated(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            names.add(sub.id)
        elif isinstance(sub, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in sub.names if alias.name != "*"}
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            names.add(sub.name)
    return names - _comprehension_variables(node)


def _comprehension_variables(node: ast.stmt) -> set[str]:
    return {name.id for sub in _walk_evaluated(node) if isinstance(sub, ast.comprehension)
            for name in ast.walk(sub.target) if isinstance(name, ast.Name)}


def _global_uses(definition: ast.AST) -> set[str]:
    """Names a function or class reads that it does not set itself: the globals it needs.
    Statements after a `raise` or `return` in the same block are unreachable and ignored (a
    skeleton's `raise NotImplementedError` followed by `return output` needs no `output`)."""
    loads, stores = set(), set()
    for sub in _reachable(definition):
        if isinstance(sub, ast.Name):
            (loads if isinstance(sub.ctx, ast.Load) else stores).add(sub.id)
        elif isinstance(sub, ast.arg):
            stores.add(sub.arg)
    return loads - stores - set(dir(builtins))


def _reachable(node: ast.AST):
    yield node
    for _field, value in ast.iter_fields(node):
        if isinstance(value, list) and value and all(isinstance(item, ast.stmt) for item in value):
            for statement in value:
                yield from _reachable(statement)
                if isinstance(statement, (ast.Raise, ast.Return)):
                    break
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, ast.AST):
                    yield from _reachable(item)
        elif isinstance(value, ast.AST):
            yield from _reachable(value)


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def _replace_with_pass(text: str, statements: list[ast.stmt]) -> str:
    """Each statement's text becomes `pass`; every other character stays where it was (same
    lines, same line endings). ``ast`` columns are UTF-8 byte offsets, so they are turned into
    character offsets on each line, and statements are replaced from the last to the first so
    that a replacement never shifts the offsets of one still to come on the same line."""
    lines = split_lines(text)
    for node in sorted(statements, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        first, last = node.lineno - 1, node.end_lineno - 1
        start = _character_offset(lines[first], node.col_offset)
        end = _character_offset(lines[last], node.end_col_offset)
        if first == last:
            lines[first] = lines[first][:start] + "pass" + lines[first][end:]
            continue
        rest, ending = _without_ending(lines[last][end:])
        lines[first] = lines[first][:start] + "pass" + _without_ending(lines[first])[1]
        for index in range(first + 1, last):
            lines[index] = _without_ending(lines[index])[1]
        # what follows the statement on its last line (`; y = 2`) needs a statement before it; an
        # empty last line with no line ending would not count as a line at all
        follows = rest.strip() and not rest.lstrip().startswith("#")
        lines[last] = ("pass" + rest if follows or not (rest or ending) else rest) + ending
    return "".join(lines)


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` as Python's tokenizer counts them, each with its ending: only
    ``\\n``, ``\\r\\n`` and ``\\r`` end a line (``str.splitlines`` also splits at form feeds and
    Unicode separators, which Python reads as ordinary characters)."""
    return _LINE.findall(text)


def line_texts(text: str) -> list[str]:
    """:func:`split_lines` without the line endings."""
    return [_without_ending(line)[0] for line in split_lines(text)]


def _without_ending(line: str) -> tuple[str, str]:
    body = line.rstrip("\r\n")
    return body, line[len(body):]


def _character_offset(line: str, byte_offset: int) -> int:
    return len(line.encode("utf-8", "surrogatepass")[:byte_offset].decode("utf-8", "surrogatepass"))
