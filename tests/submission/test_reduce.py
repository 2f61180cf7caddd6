"""Definitions-only reduction: what is kept, what is skipped and said, line numbers kept."""

import ast

from autograder.submission.reduce import definitions_only

SCRIPT = '''"""A student's script."""
import torch; print("starting")
import numpy as np
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CHARS = sorted(set("hello world"))
STOI = {c: i for i, c in enumerate(CHARS)}
SCALE = 1 / np.sqrt(8) if False else 0.5
text = open("data.txt").read()
vocab = build(text)
size = len(vocab)
loss_fn = torch.nn.CrossEntropyLoss()


def build(t):
    return sorted(set(t))


def encode(s):
    return [vocab[c] for c in s]


for epoch in range(10_000):
    loss = train(
        epoch)
try:
    import einops
except ImportError:
    einops = None
torch.backends.cudnn.benchmark = True
with torch.no_grad():
    model = build("abc")
if __name__ == "__main__":
    main()
'''


def kept_and_skipped(source: str):
    reduction = definitions_only(source)
    return reduction, {s.line: s.what for s in reduction.skipped}


def test_definitions_and_simple_constants_are_kept():
    reduction, skipped = kept_and_skipped(SCRIPT)
    for line in (3, 4, 5, 6, 7, 11, 14, 18, 26):
        assert line not in skipped, (line, skipped.get(line))
    namespace = {}
    exec(compile(reduction.text, "script.py", "exec"), namespace)  # runs instantly: nothing else is left
    assert namespace["STOI"]["d"] == 1 and namespace["DEVICE"].type in ("cpu", "cuda")
    assert callable(namespace["encode"]) and "einops" in namespace  # the try/except import block ran


def test_calls_loops_and_statements_that_need_them_are_skipped_and_described():
    _, skipped = kept_and_skipped(SCRIPT)
    assert skipped[2] == "top-level call `print(...)`"
    assert skipped[8].startswith("assignment `text = open('data.txt').read()`")
    assert skipped[9] == "assignment `vocab = build(text)`"
    assert skipped[10] == "assignment `size = len(vocab)`, which needs `vocab` from a skipped statement"
    assert skipped[22] == "loop `for epoch in range(10000):`"
    assert skipped[29] == "assignment `torch.backends.cudnn.benchmark = True`"  # no changing library state
    assert skipped[30].startswith("`with` block")


def test_line_numbers_and_shared_lines_are_preserved():
    reduction = definitions_only(SCRIPT)
    before, after = SCRIPT.splitlines(), reduction.text.splitlines()
    assert len(after) == len(before)
    assert after[1] == "import torch; pass"  # the import survives, the call on its line does not
    assert after[13] == before[13] == "def build(t):"
    assert after[22:24] == ["", ""]  # the rest of a multi-line statement is blanked
    ast.parse(reduction.text)


def test_a_kept_function_that_needs_a_skipped_global_is_reported():
    reduction = definitions_only(SCRIPT)
    assert reduction.needs(("encode",)) == [("encode", "vocab")]
    assert reduction.needs(("build",)) == []  # only what the grader calls (and its helpers) matters
    assert reduction.only_skipped_set["vocab"].line == 9
    assert "main" not in reduction.only_skipped_set and "STOI" not in reduction.only_skipped_set


def test_a_helper_of_a_graded_function_counts_too():
    source = "vocab = load()\ndef helper(s):\n    return vocab[s]\ndef graded(s):\n    return helper(s)\n"
    assert definitions_only(source).needs(("graded",)) == [("helper", "vocab")]


def test_main_guard_is_skipped_without_being_listed():
    reduction = definitions_only(SCRIPT)
    (guard,) = [s for s in reduction.skipped if s.line == 32]
    assert not guard.listed


def test_unreachable_code_after_raise_needs_no_global():
    source = ("output = compute()\n"
              "def f(x):\n    raise NotImplementedError\n    return output\n")
    assert definitions_only(source).needs(("f",)) == []


def test_a_later_definition_wins_as_in_run_all():
    source = "def f():\n    return 1\nf()\ndef f():\n    return 2\n"
    namespace = {}
    exec(definitions_only(source).text, namespace)
    assert namespace["f"]() == 2


def test_cheap_calls_are_allowed_and_calls_to_own_code_are_not():
    source = ("import torch\nimport math\nfrom torch import nn\n"
              "def make():\n    return 1\n"
              "A = math.sqrt(2)\nB = nn.Linear(2, 2)\nC = make()\nD = range(3)\nE = ', '.join(['a'])\n"
              "F = lambda: make()\nG = [make() for _ in range(3)]\n")
    _, skipped = kept_and_skipped(source)
    assert set(skipped) == {8, 12}
