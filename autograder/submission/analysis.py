"""The written analysis: answers in words, collected for manual grading (no points).

An assignment whose spec has an ``[analysis]`` table asks questions that a person grades. The
answers are read from the submission's text, never by running it, in the grading process:

* a module-level string named ``variable`` (``WRITTEN_ANALYSIS = \"\"\"...\"\"\"``) in the
  ``.py`` file or in a notebook's code cell: the skeleton ships this string with the
  questions and a ``TODO: your answer`` line under each (:func:`placeholder`);
* a notebook's markdown cell whose first line is a heading reading ``title``
  (``## Written analysis``), with the markdown cells after it up to the next code cell;
* a text file named in ``files`` (``analysis.md``) beside the submission in a folder.

Answers numbered like the questions (``1.``, ``2)``, ``Q3:``) are paired with them for the
instructor's report; otherwise the text is shown whole under the questions.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from autograder.spec import AnalysisSpec
from autograder.submission.source import SubmissionFormatError, notebook_cells, read_python

TODO = "TODO: your answer"
INTRO = ("Answer each question in a few sentences, in place of its TODO line. Your instructor grades these "
         "answers by hand; they earn no automatic points.")
MAX_CHARS = 50_000  # per source; a longer text is cut (it is read by a person)
_NUMBERED = re.compile(r"^\s*(?:\*\*)?(?:Q(?:uestion)?\s*)?(\d+)\s*[.):]\s?", re.IGNORECASE)
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*?)\s*#*\s*$")


@dataclass
class Answer:
    source: str  # where it was found, in words: "the WRITTEN_ANALYSIS string", "markdown cell 31"
    text: str


@dataclass
class WrittenAnalysis:
    spec: AnalysisSpec
    answers: list[Answer] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # e.g. the variable is not a plain string

    @property
    def text(self) -> str:
        return "\n\n".join(answer.text for answer in self.answers)

    @property
    def words(self) -> int:
        return len(re.findall(r"\w+", _without_todos(self.text, self.spec)))

    @property
    def todo_left(self) -> int:
        """How many questions still carry the skeleton's TODO line."""
        return min(self.text.count(TODO), len(self.spec.questions)) if self.answers else len(self.spec.questions)

    @property
    def answered(self) -> bool:
        return bool(self.answers) and self.words > 0 and self.todo_left < len(self.spec.questions)

    def paired(self) -> list[tuple[str, str | None]]:
        """(question, the answer to it or None) when the answers are numbered 1..n in order;
        otherwise every question with None (the report then shows the whole text)."""
        blocks, current = {}, None
        for line in self.text.splitlines():
            numbered = _NUMBERED.match(line)
            if numbered and int(numbered.group(1)) == len(blocks) + 1:
                current = int(numbered.group(1))
                blocks[current] = [line[numbered.end():]]
            elif current is not None:
                blocks[current].append(line)
        if sorted(blocks) != list(range(1, len(self.spec.questions) + 1)):
            return [(question, None) for question in self.spec.questions]
        pairs = []
        for number, question in enumerate(self.spec.questions, start=1):
            answer = "\n".join(blocks[number]).strip()
            if _normal(answer).startswith(_normal(question)):  # the skeleton repeats the question
                answer = answer[_prefix_length(answer, question):].strip()
            pairs.append((question, answer))
        return pairs

    def notice(self) -> str:
        """One line for the student (and the top of results.json)."""
        where = self.spec
        how = (f"the `{where.variable}` string (in your .py file or a notebook code cell), a markdown cell whose "
               f"first line is `## {where.title}`, or a file {' or '.join(where.files)} beside your submission")
        if not self.answered:
            found = f" ({'; '.join(self.problems)})" if self.problems else ""
            return (f"No written analysis found{found}: answer the {len(where.questions)} questions of the handout in "
                    f"{how}. It is graded by hand and earns no automatic points.")
        left = (f" {self.todo_left} of {len(where.questions)} questions still say '{TODO}'."
                if self.todo_left else "")
        return (f"Written analysis collected from {', '.join(a.source for a in self.answers)} ({self.words} words) "
                f"for your instructor to grade by hand; it earns no automatic points.{left}")

    def summary(self) -> dict:
        """Plain facts for results.json's extra_data."""
        return {"answered": self.answered, "sources": [a.source for a in self.answers], "words": self.words,
                "todo_left": self.todo_left, "problems": self.problems}


def placeholder(spec: AnalysisSpec) -> str:
    """The skeleton's ``WRITTEN_ANALYSIS = \"\"\"...\"\"\"`` with the questions and TODO lines."""
    lines = [f'{spec.variable} = """', *textwrap.wrap(INTRO, width=88), ""]
    for number, question in enumerate(spec.questions, start=1):
        lines += textwrap.wrap(f"{number}. {question}", width=88, subsequent_indent="   ")
        lines += [TODO, ""]
    return "\n".join(lines).rstrip() + '\n"""'


def collect(spec: AnalysisSpec, submission_file: Path | None, folder: Path | None) -> WrittenAnalysis:
    """Every place of ``spec`` that holds an answer; sources still equal to the skeleton's
    placeholder are dropped when another source has answers."""
    result = WrittenAnalysis(spec)
    if folder is not None:
        for name in spec.files:
            path = folder / name
            if path.is_file():
                with open(path, "rb") as stream:  # never more than the cap, however large the file
                    text = stream.read(4 * MAX_CHARS).decode("utf-8", errors="replace")[:MAX_CHARS].strip()
                if text:
                    result.answers.append(Answer(f"the file {name}", text))
    if submission_file is not None:
        try:
            if submission_file.suffix == ".ipynb":
                cells = notebook_cells(submission_file)
                result.answers += _markdown_answers(spec, cells)
                code = "\n".join(source if kind == "code" else "" for _, kind, source in cells)
            else:
                code = read_python(submission_file)
        except SubmissionFormatError:
            code = ""  # the grade's notices already say the notebook is unreadable
        string = _variable_value(code, spec.variable, result.problems)
        if string is not None and string.strip():
            result.answers.append(Answer(f"the {spec.variable} string", string.strip()[:MAX_CHARS]))
    if len(result.answers) > 1:
        answered = [answer for answer in result.answers if _without_todos(answer.text, spec).strip()]
        result.answers = answered or result.answers[:1]
    return result


def _markdown_answers(spec: AnalysisSpec, cells: list[tuple[int, str, str]]) -> list[Answer]:
    answers, collecting = [], None
    for number, kind, source in cells:
        if kind == "code":
            collecting = None
            continue
        if kind != "markdown":
            continue
        lines = source.strip().splitlines()
        heading = _HEADING.match(lines[0]) if lines else None
        if heading and _normal(heading.group(1)).rstrip(":") == _normal(spec.title):
            collecting = Answer(f"markdown cell {number}", "\n".join(lines[1:]).strip())
            answers.append(collecting)
        elif collecting is not None:
            collecting.text = f"{collecting.text}\n\n{source.strip()}".strip()
    for answer in answers:
        answer.text = answer.text[:MAX_CHARS]
    return [answer for answer in answers if answer.text]


def _variable_value(code: str, name: str, problems: list[str]) -> str | None:
    """The string assigned to ``name`` at module level (the last assignment wins, as it would
    when the file runs); a file that does not parse is searched line-wise."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        match = re.search(rf'^{re.escape(name)}\s*=\s*[rRuU]?("""|\'\'\')(.*?)\1', code, re.MULTILINE | re.DOTALL)
        return match.group(2) if match else None
    value = None
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) and node.value is not None else []
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                value = node.value.value
            else:
                problems.append(f"`{name}` at line {node.lineno} is not a plain string literal")
    return value


def _without_todos(text: str, spec: AnalysisSpec) -> str:
    """``text`` less the skeleton's own words (its instructions, the questions, the TODO lines)."""
    remaining = _normal(text)
    for piece in [_normal(INTRO), _normal(TODO), *(_normal(q) for q in spec.questions)]:
        remaining = remaining.replace(piece, " ")
    return re.sub(r"\b\d+\.\s", " ", remaining)


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def _prefix_length(answer: str, question: str) -> int:
    """How many characters of ``answer`` spell ``question`` (whitespace may differ)."""
    wanted, seen = len(_normal(question).replace(" ", "")), 0
    for index, char in enumerate(answer):
        seen += not char.isspace()
        if seen == wanted:
            return index + 1
    return len(answer)
