"""Reading submissions: notebooks (cells, magics, shell lines, bad files) and scripts."""

import json

import pytest
from conftest import write_notebook

from autograder.submission.source import SubmissionFormatError, prepare, read_submission


def test_cells_are_joined_and_lines_are_named_by_cell(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", [("md", "# Title"), "import torch", ("md", "text"),
                                                 "x = 1\ny = undefined_name"])
    source = read_submission(path)
    assert source.is_notebook and source.text == "import torch\nx = 1\ny = undefined_name\n"
    assert source.lines.label(3) == "cell 4, line 2"  # markdown cells count: it is what a student scrolls


def test_shell_lines_magics_and_help_are_removed_and_listed(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", [
        "!pip install einops\n%matplotlib inline\nimport torch\nfiles = !ls\ntorch.zeros?",
        "if True:\n    !nvidia-smi\n    z = 1",
        "%%time\nw = 2",
        "%%bash\necho hi",
        "%%writefile notes.txt\nnot python at all"])
    prepared = prepare(path)
    namespace = {}
    exec(prepared.run_text, namespace)
    assert namespace["w"] == 2 and namespace["z"] == 1
    removed = "\n".join(prepared.skipped())
    for expected in ("cell 1, line 1: shell command `!pip install einops`", "cell 1, line 2: IPython magic",
                     "cell 1, line 4: shell command `files = !ls`", "cell 1, line 5: help request",
                     "cell 2, line 2: shell command", "cell 3, line 1: cell magic `%%time` removed (its Python body is kept)",
                     "cell 4, line 1: cell magic `%%bash` and the whole cell removed"):
        assert expected in removed, (expected, removed)
    assert prepared.set_only_by_skipped("files") == "cell 1, line 4: a shell command"


def test_valid_python_is_never_rewritten(tmp_path):
    text = 'doc = """\n%not a magic\n!not a shell line\n"""\n'
    path = write_notebook(tmp_path / "a.ipynb", [text])
    assert read_submission(path).text == text


def test_a_cell_with_a_syntax_error_is_skipped_with_a_notice(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", ["def f():\n    return 1", "def g(:\n    pass", "h = 3"])
    source = read_submission(path)
    assert "def g" not in source.text and "h = 3" in source.text
    assert any(notice.startswith("Cell 2 has a syntax error at line 1") for notice in source.notices)


def test_cells_run_out_of_order_get_a_notice(tmp_path):
    path = write_notebook(tmp_path / "a.ipynb", ["a = 1", "b = 2", "c = 3"], counts=[5, 2, 9])
    (notice,) = read_submission(path).notices
    assert "out of order (execution counts 5, 2, 9)" in notice and "Restart & Run All" in notice


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not a readable notebook (invalid JSON"),
    (json.dumps({"nbformat": 5, "cells": []}), "has nbformat version 5"),
    (json.dumps({"cells": []}), "has nbformat version None"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "only prose", "id": "x"}]}), "has no code cells"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}),
     "could not be read as a notebook"),
])
def test_unreadable_notebooks_get_a_clear_message(tmp_path, content, message):
    path = tmp_path / "a.ipynb"
    path.write_text(content)
    with pytest.raises(SubmissionFormatError, match=message.replace("(", r"\(")):
        read_submission(path)


def test_a_script_exported_from_colab_keeps_working(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("!pip install einops\nimport math\nX = math.pi\n")
    prepared = prepare(path)
    assert prepared.skipped() == ["line 1: shell command `!pip install einops` removed"]
    assert prepared.run_text.splitlines()[1:] == ["import math", "X = math.pi"]


def test_whole_file_mode_keeps_top_level_code(tmp_path):
    path = tmp_path / "a.py"
    path.write_text("import math\nprint(math.pi)\n")
    assert "print(math.pi)" in prepare(path, "all").run_text
    assert "print" not in prepare(path).run_text


def test_a_script_is_read_as_python_reads_it_byte_order_mark_and_encoding_declaration(tmp_path):
    from autograder.submission.source import read_python

    marked = tmp_path / "marked.py"
    marked.write_bytes(b"\xef\xbb\xbfimport torch\nS = '\xe2\x9c\x93'\n")
    assert read_python(marked) == "import torch\nS = '✓'\n"
    declared = tmp_path / "declared.py"
    declared.write_bytes(b"# -*- coding: latin-1 -*-\nS = '\xe9'\n")
    text = read_python(declared)
    assert text == "# -*- coding: utf-8 -*-\nS = 'é'\n"  # staged as UTF-8, so the declaration says so
    staged = tmp_path / "staged.py"
    staged.write_text(text, encoding="utf-8")
    namespace = {}
    exec(compile(staged.read_bytes(), str(staged), "exec"), namespace)  # as Python imports the staged file
    assert namespace["S"] == "é"
