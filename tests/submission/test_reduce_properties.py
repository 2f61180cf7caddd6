"""Property tests of the reduction to definitions (reduce.py, source.py) over generated
top-level statement sequences written the way students write them: several statements on a
line with `;`, non-ASCII text, continuation lines, statements after a compound statement's
colon, comments, tabs, CRLF and lone CR line endings, form feeds, notebook cells, shell lines.

Whenever the original parses, the reduced text parses, has the same lines, keeps every kept
statement character for character on the same lines, and lists every skipped statement at its
true line (cell and line in a notebook).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from conftest import write_notebook
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autograder.submission.reduce import definitions_only, split_lines
from autograder.submission.source import prepare

# {i} makes every name unique, so a kept statement never needs a name a skipped one sets.
SIMPLE_KEPT = [
    "import math", "X{i} = {i}", 'S{i} = "✓ loaded → é {i}"', "T{i} = (1,\n    {i})", "U{i} = 1 + \\\n    {i}",
    '"""doc ✓ {i}"""', "L{i} = lambda v: v + {i}", "R{i} = [j * {i} for j in range(3)]", "F{i} = 'a\fb'",
    "M{i} = {{'k': '日本'}}",
]
SIMPLE_SKIPPED = [
    'print("✓ loaded {i}")', 'show{i}("→", 1)', "call{i}(1,\n      2)", "W{i} = compute{i}(\n    3)",
    "torch.manual_seed({i})", "np.random.seed({i})", 'plt.plot(h); plt.yscale("log"); plt.xlabel("epoch")',
    "wandb.log({{'loss': {i}}})", "model{i}.train()",
]
COMPOUND_KEPT = ["def f{i}(x):\n    return x  # → done", "class C{i}:\n\tpass", "class D{i}: y = 1",
                 "if True:\n    K{i} = 1", "try:\n    import einops\nexcept ImportError:\n    einops = None"]
COMPOUND_SKIPPED = ["for k in range(2): print(k)", 'for k in range(2):\n    print("é")',
                    'with open("x") as fh{i}: fh{i}.read()', "while False: pass", "if __name__ == '__main__':\n    main()"]
SEPARATORS = [";", "; ", " ;  ", ";\t"]
ENDINGS = ["\n", "\r\n", "\r"]
COMMENTS = ["", "  # note ✓", "\t# → é", "  #"]
SHELL = ["!pip install wandb", "%matplotlib inline"]


@dataclass
class Statement:
    text: str
    kept: bool
    line: int = 0  # 1-based line in its cell (or file) where it starts


@st.composite
def physical_lines(draw, numbering: list[int]):
    """One source line (which may span several physical lines): simple statements joined with
    a `;` separator, or one compound statement; a comment may follow."""
    def snippet(pool: list[str], kept: bool) -> Statement:
        numbering[0] += 1
        return Statement(draw(st.sampled_from(pool)).format(i=numbering[0]), kept)

    if draw(st.booleans()):
        kinds = draw(st.lists(st.booleans(), min_size=1, max_size=3))
        statements = [snippet(SIMPLE_KEPT if kept else SIMPLE_SKIPPED, kept) for kept in kinds]
    else:
        kept = draw(st.booleans())
        statements = [snippet(COMPOUND_KEPT if kept else COMPOUND_SKIPPED, kept)]
    separators = [draw(st.sampled_from(SEPARATORS)) for _ in statements[1:]] + [""]
    return statements, separators, draw(st.sampled_from(COMMENTS))


@st.composite
def sources(draw, shell: bool = False):
    """(text, statements with their true lines, shell lines with theirs)."""
    numbering, text, line, statements, shell_lines = [0], "", 1, [], []
    for _ in range(draw(st.integers(1, 8))):
        ending = draw(st.sampled_from(ENDINGS))
        if shell and draw(st.integers(0, 5)) == 0:
            command = draw(st.sampled_from(SHELL))
            shell_lines.append((command, line))
            text, line = text + command + ending, line + 1
            continue
        if draw(st.integers(0, 4)) == 0:
            if text.endswith("\r") and ending.startswith("\n"):
                ending = "\r"  # "\r" then "\n" would be one "\r\n" ending, not a blank line
            text, line = text + ending, line + 1  # a blank line
            continue
        group, separators, comment = draw(physical_lines(numbering))
        for statement, separator in zip(group, separators, strict=True):
            statement.line = line
            statement.text = statement.text.replace("\n", ending)
            text += statement.text + separator
            line += statement.text.count(ending)
            statements.append(statement)
        text, line = text + comment + ending, line + 1
    if draw(st.booleans()):  # the last line may have no ending
        text = text.rstrip("\r\n")
    return text, statements


def expected_statements(statements: list[Statement]) -> list[Statement]:
    """The top-level statements as ast sees them: a snippet of several statements
    (`plt.plot(h); plt.yscale(...)`) counts each; all of them are skipped."""
    found = []
    for statement in statements:
        for node in ast.parse(statement.text).body:
            found.append(Statement(ast.get_source_segment(statement.text, node), statement.kept,
                                   statement.line + node.lineno - 1))
    return found


def top_level_segments(text: str) -> list[tuple[int, int, str]]:
    tree = ast.parse(text)
    return [(node.lineno, node.end_lineno, ast.get_source_segment(text, node)) for node in tree.body
            if not isinstance(node, ast.Pass)]


PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(sources())
def test_reduced_text_parses_keeps_lines_and_kept_statements_verbatim(generated):
    text, statements = generated
    ast.parse(text)  # the generator writes valid Python
    reduction = definitions_only(text)
    reduced = reduction.text
    ast.parse(reduced)
    assert len(split_lines(reduced)) == len(split_lines(text))
    assert [line[len(line.rstrip("\r\n")):] for line in split_lines(reduced)] == \
        [line[len(line.rstrip("\r\n")):] for line in split_lines(text)]  # the same line endings
    expected = expected_statements(statements)
    kept = [(s.line, s.text) for s in expected if s.kept]
    assert [(first, segment) for first, _, segment in top_level_segments(reduced)] == kept
    assert [(first, last) for first, last, _ in top_level_segments(reduced)] == \
        [(first, last) for first, last, segment in top_level_segments(text) if (first, segment) in kept]
    assert [skipped.line for skipped in reduction.skipped] == [s.line for s in expected if not s.kept]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(sources(shell=True), min_size=1, max_size=4), st.booleans())
def test_a_notebook_lists_every_skipped_statement_at_its_cell_and_line(tmp_path, cells, markdown_first):
    """Cells counted as the student counts them (markdown included); shell lines removed and
    listed at their own cell and line; the reduced text parses."""
    sources_only = [text for text, _ in cells]
    layout = ([("md", "# Homework")] if markdown_first else []) + ["import torch"] + sources_only
    path = write_notebook(tmp_path / "attention.ipynb", layout)
    prepared = prepare(path)
    ast.parse(prepared.run_text)
    listed = prepared.skipped()
    wanted = []
    for index, (text, statements) in enumerate(cells):
        cell = index + 2 + markdown_first
        cleaned = text
        for command in SHELL:
            cleaned = cleaned.replace(command, "")
        wanted += [f"cell {cell}, line {s.line}: " for s in expected_statements(statements) if not s.kept
                   and "__main__" not in s.text]
        for number, line in enumerate(split_lines(text), start=1):
            if line.rstrip("\r\n") in SHELL:
                wanted.append(f"cell {cell}, line {number}: ")
    assert sorted(item.split(": ")[0] for item in listed) == sorted(item.split(": ")[0] for item in wanted)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(sources(), st.sampled_from([b"", b"\xef\xbb\xbf"]))
def test_a_script_read_from_disk_reduces_to_parsing_text(tmp_path, generated, mark):
    """Through the file reader too (byte-order mark or not): what runs parses, and skipped
    statements are named by their line."""
    text, statements = generated
    path = tmp_path / "attention.py"
    path.write_bytes(mark + text.encode("utf-8"))
    prepared = prepare(path)
    ast.parse(prepared.run_text)
    assert [label.split(":")[0] for label in prepared.skipped()] == \
        [f"line {s.line}" for s in expected_statements(statements) if not s.kept and "__main__" not in s.text]
