"""autograder.submission.analysis: written answers collected from the text, shown to the instructor."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import REFERENCE, REPO, write_notebook

from autograder.outputs.report import write_reports
from autograder.pipeline import grade
from autograder.spec import AnalysisSpec, SpecError, load_spec
from autograder.students.template import skeleton
from autograder.submission.analysis import TODO, collect, placeholder

QUESTIONS = ("Which pattern do the attention weights of a reversed sentence show, and why?",
             "What does the teacher forcing ratio change during training?",
             "Why must padding be masked?")
SPEC = AnalysisSpec(questions=QUESTIONS)
ANSWERED = '''
WRITTEN_ANALYSIS = """
1. Which pattern do the attention weights of a reversed sentence show, and why?
An anti-diagonal: the first output word is the last input word.

2. What does the teacher forcing ratio change during training?
How often the decoder is fed the true previous word instead of its own guess.

3. Why must padding be masked?
Otherwise attention spreads weight over pad positions that carry no word.
"""
'''


def write(tmp_path, text: str, name: str = "reversal.py"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_skeletons_placeholder_counts_as_not_answered(tmp_path):
    text = "import torch\n\n" + placeholder(SPEC) + "\n"
    compile(text, "skeleton", "exec")  # the placeholder is valid Python
    found = collect(SPEC, write(tmp_path, text), None)
    assert not found.answered and found.todo_left == 3 and found.words == 0
    assert found.notice().startswith("No written analysis found") and "## Written analysis" in found.notice()


def test_numbered_answers_in_the_string_are_paired_with_the_questions(tmp_path):
    found = collect(SPEC, write(tmp_path, ANSWERED), None)
    assert found.answered and found.todo_left == 0
    pairs = found.paired()
    assert [question for question, _ in pairs] == list(QUESTIONS)
    assert pairs[0][1] == "An anti-diagonal: the first output word is the last input word."
    assert pairs[2][1].startswith("Otherwise attention")
    assert 30 < found.words < 45  # the questions are not counted as the student's words
    assert "the WRITTEN_ANALYSIS string" in found.notice() and "no automatic points" in found.notice()


def test_a_partly_answered_placeholder_says_how_many_are_left(tmp_path):
    text = placeholder(SPEC).replace(TODO, "Anti-diagonal, because the output reverses the input.", 1)
    found = collect(SPEC, write(tmp_path, text), None)
    assert found.answered and found.todo_left == 2
    assert "2 of 3 questions still say" in found.notice()


def test_unnumbered_text_is_kept_whole(tmp_path):
    found = collect(SPEC, write(tmp_path, 'WRITTEN_ANALYSIS = "It reverses, so the map is anti-diagonal."\n'), None)
    assert found.answered and all(answer is None for _, answer in found.paired())
    assert found.text == "It reverses, so the map is anti-diagonal."


def test_a_markdown_cell_under_the_heading_replaces_the_untouched_code_placeholder(tmp_path):
    notebook = write_notebook(tmp_path / "reversal.ipynb", [
        ("md", "# Reversal\n\n## Written analysis questions\n\n1. ..."),  # the handout's own section
        "import torch", placeholder(SPEC),
        ("md", "## Written analysis\n\n1. Anti-diagonal."), ("md", "2. Feeding targets.\n\n3. Pads get weight."),
        "x = 1", ("md", "Notes that are not part of the analysis."),
    ])
    found = collect(SPEC, notebook, None)
    assert [answer.source for answer in found.answers] == ["markdown cell 4"]
    assert [answer for _, answer in found.paired()] == ["Anti-diagonal.", "Feeding targets.", "Pads get weight."]


def test_a_text_file_beside_the_submission_and_the_variable_are_both_shown(tmp_path):
    (tmp_path / "analysis.md").write_text("1. Anti-diagonal.\n2. Targets.\n3. Pads.\n")
    found = collect(SPEC, write(tmp_path, ANSWERED), tmp_path)
    assert [answer.source for answer in found.answers] == ["the file analysis.md", "the WRITTEN_ANALYSIS string"]


def test_a_string_built_at_run_time_is_reported_not_run(tmp_path):
    path = write(tmp_path, 'import os\nWRITTEN_ANALYSIS = os.system("echo pwned") or f"{1 + 1}"\n')
    found = collect(SPEC, path, None)
    assert not found.answered and "is not a plain string literal" in found.notice()


def test_a_file_that_does_not_parse_still_gives_its_answers(tmp_path):
    found = collect(SPEC, write(tmp_path, "def broken(:\n    pass\n" + ANSWERED), None)
    assert found.answered and found.paired()[1][1].startswith("How often")


def test_the_template_replaces_the_model_answers_with_the_questions():
    source = 'import torch\n\n# BEGIN WRITTEN ANALYSIS\nWRITTEN_ANALYSIS = """1. Model answer."""\n# END WRITTEN ANALYSIS\n'
    text = skeleton(source, "solution.py", SPEC)
    assert "Model answer" not in text and text.count(TODO) == 3 and QUESTIONS[1] in text
    with pytest.raises(SpecError, match="no \\[analysis\\] table"):
        skeleton(source, "solution.py", None)
    with pytest.raises(SpecError, match="closed by"):
        skeleton("# BEGIN WRITTEN ANALYSIS\nX = 1\n", "solution.py", SPEC)


@pytest.fixture
def attention_with_analysis(tmp_path):
    """The attention assignment with an [analysis] table added to its spec."""
    folder = tmp_path / "spec" / "attention"
    shutil.copytree(REPO / "assignments" / "attention", folder)
    toml = folder / "assignment.toml"
    questions = ", ".join(json.dumps(question) for question in QUESTIONS)
    toml.write_text(toml.read_text() + f"\n[analysis]\nquestions = [{questions}]\n")
    return folder


def test_the_spec_table_is_read_and_a_misspelt_key_is_located(attention_with_analysis):
    spec = load_spec(attention_with_analysis)
    assert spec.analysis == AnalysisSpec(questions=QUESTIONS)
    toml = attention_with_analysis / "assignment.toml"
    toml.write_text(toml.read_text().replace("[analysis]\n", "[analysis]\nheading = 'x'\n"))
    line = toml.read_text().splitlines().index("heading = 'x'") + 1
    with pytest.raises(SpecError, match=rf"assignment.toml:{line}: analysis.*heading.*allowed keys here: files, "):
        load_spec(attention_with_analysis)


def test_answers_reach_the_instructor_report_only(attention_with_analysis, tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "attention.py").write_text(REFERENCE.read_text() + ANSWERED)
    result = grade(attention_with_analysis, folder, device="cpu")
    assert result.score == result.max_score  # no points are attached to the analysis
    paths = write_reports(result, tmp_path / "out")
    instructor, student = paths["report"].read_text(), paths["student_report"].read_text()
    assert "An anti-diagonal: the first output word is the last input word." in instructor
    assert "the first output word" not in student and "Written analysis collected" in student
    extra = json.loads(paths["results"].read_text())["extra_data"]["written_analysis"]
    assert extra["answered"] and extra["todo_left"] == 0 and extra["sources"] == ["the WRITTEN_ANALYSIS string"]


def test_a_missing_analysis_costs_no_points_and_is_flagged(attention_with_analysis, tmp_path):
    result = grade(attention_with_analysis, REFERENCE, device="cpu")
    assert result.score == result.max_score
    assert any(notice.startswith("No written analysis found") for notice in result.notices)
    assert "No answers found" in write_reports(result, tmp_path)["report"].read_text()
