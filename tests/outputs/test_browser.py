"""The HTML reports checked as a person sees them, in a headless Chromium (tests/browser.py):
no console errors, every embedded figure decodes, and the student view shows nothing of a
hidden check that the instructor view shows. Screenshots go to test-artifacts/screenshots/
(or $AUTOGRADER_ARTIFACTS/screenshots/)."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from browser import inspect_page
from conftest import bug_file

from autograder.outputs.report import write_reports
from autograder.pipeline import grade

NAME = "attention_heatmaps"
# Fails `trained_accuracy` (hidden) with a message, expected and got; draws the heatmaps, among
# them the hidden multi-head one; grades in about 10 s.
SUBMISSION = bug_file(NAME, "lstm_not_batch_first")
PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    result = grade(NAME, SUBMISSION, device="cpu")
    return result, write_reports(result, tmp_path_factory.mktemp("reports"))


@pytest.fixture(scope="module")
def pages(browser, graded):
    _, paths = graded
    return {"instructor": inspect_page(browser, paths["report"], f"{NAME}-{SUBMISSION.stem}-instructor"),
            "student": inspect_page(browser, paths["student_report"], f"{NAME}-{SUBMISSION.stem}-student")}


@pytest.mark.parametrize("view", ["instructor", "student"])
def test_report_opens_without_console_errors_and_every_figure_decodes(pages, view):
    page = pages[view]
    assert page.console_errors == []
    assert page.embedded_images, "no embedded figure on the page"
    assert page.broken_images == []
    assert all(image.natural_width > 50 and image.natural_height > 50 for image in page.images)
    assert page.screenshot.is_file() and page.screenshot.read_bytes().startswith(b"\x89PNG")
    assert f"{view} view" in page.text


def test_student_view_shows_nothing_of_a_hidden_check(pages, graded):  # browser first: skip before grading
    result, _ = graded
    instructor, student = pages["instructor"], pages["student"]
    hidden = [o for o in result.outcomes if o.spec.visibility != "visible"]
    failed = [o for o in hidden if not o.passed]
    assert failed, "the submission must fail a hidden check, or this test proves nothing"
    secrets = []
    for outcome in hidden:
        verdict = outcome.verdict
        secrets += [text for text in (verdict.message, verdict.expected, verdict.got, verdict.details) if text]
    assert len(secrets) >= 3  # message, expected and got of the failed hidden check at least
    for text in secrets:
        first_line = str(text).strip().splitlines()[0]
        assert first_line in instructor.text or html.escape(first_line) in instructor.html, first_line
        assert first_line not in student.text, first_line
        assert html.escape(first_line) not in student.html and first_line not in student.html, first_line
    for outcome in hidden:  # the check is listed, its result is not
        assert outcome.spec.title in student.text
    assert "Result hidden from students" in student.text
    hidden_names = {o.spec.name for o in hidden}
    assert any(image.alt.split()[-1] in hidden_names for image in instructor.images)
    assert not any(image.alt.split()[-1] in hidden_names for image in student.images)


def test_student_total_counts_only_the_checks_shown(pages, graded):
    result, _ = graded
    visible = [o for o in result.outcomes if o.spec.visibility == "visible"]
    shown = f"{sum(o.score for o in visible):g} / {sum(o.spec.points for o in visible):g}"
    full = f"{result.score:g} / {result.max_score:g}"
    assert shown != full
    assert f"Score on the checks shown: {shown}" in pages["student"].text
    assert f"Score: {full}" in pages["instructor"].text
    assert full not in pages["student"].text
    for outcome in result.outcomes:  # each hidden row shows its points, not its score
        if outcome.spec.visibility != "visible":
            row = pages["student"].by_id[outcome.spec.name]
            assert f"– / {outcome.spec.points:g}" in row and not re.search(r"passed|failed", row), row
            assert f"{outcome.score:g} / {outcome.spec.points:g}" in pages["instructor"].by_id[outcome.spec.name]


# The checker itself must be able to fail: tiny pages with each fault.
FAULTS = {
    "broken_data_image": (f'<img alt="good" src="data:image/png;base64,{PNG_1x1}">'
                          '<img alt="broken" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAE">'),
    "console_error": '<p>hello</p><script>console.error("report glitch 42")</script>',
    "exception": '<p>hello</p><script>throw new Error("report exception 43")</script>',
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_inspect_page_catches_each_fault(browser, tmp_path, fault):
    path = tmp_path / f"{fault}.html"
    path.write_text(f"<!DOCTYPE html><html><head><title>{fault}</title></head><body>{FAULTS[fault]}</body></html>")
    page = inspect_page(browser, path, f"selftest-{fault}")
    assert page.screenshot.is_file()
    if fault == "broken_data_image":
        assert [image.alt for image in page.images] == ["good", "broken"]
        assert [image.alt for image in page.broken_images] == ["broken"]
        assert page.images[0].natural_width == 1 and len(page.embedded_images) == 2
    else:
        assert page.text.strip() == "hello" and page.images == []
        expected = "report glitch 42" if fault == "console_error" else "report exception 43"
        assert any(expected in message for message in page.console_errors), page.console_errors


def test_a_clean_page_reports_nothing(browser, tmp_path):
    path = tmp_path / "clean.html"
    path.write_text(f'<!DOCTYPE html><html><body><p>fine</p><img alt="dot" src="data:image/png;base64,{PNG_1x1}">'
                    '<script>console.log("only a log")</script></body></html>')
    page = inspect_page(browser, path, "selftest-clean")
    assert page.console_errors == [] and page.broken_images == [] and page.text.strip() == "fine"
    assert any("only a log" in entry["message"] for entry in page.log)  # the log is read, not empty by accident


def test_class_summary_opens_cleanly_and_links_to_reports_that_exist(browser, tmp_path):
    import shutil

    from conftest import BUGS, REFERENCE

    from autograder.commands.batch import grade_all

    root = tmp_path / "submissions"
    for student, source in (("alice", REFERENCE), ("bob", BUGS[0])):
        (root / student).mkdir(parents=True)
        shutil.copy(source, root / student / "attention.py")
    (root / "carol").mkdir()  # hands nothing in: a problem on the page
    out = tmp_path / "graded"
    grade_all(root, out, workers=2, names=["attention"], device="cpu")
    page = inspect_page(browser, out / "index.html", "class-summary")
    assert page.console_errors == []
    assert len(page.embedded_images) == 1 and page.broken_images == []
    assert page.images[0].natural_width >= 400 and page.images[0].alt == "histogram of attention scores"
    assert "carol: attention: no submission" in page.text and "median" in page.text
    links = browser.execute_script("return [...document.querySelectorAll('a')].map(a => a.href)")
    reports = [link for link in links if link.endswith(".html")]
    assert len(reports) == 4  # two students, instructor and student view each
    for link in reports:
        assert Path(link.removeprefix("file://")).is_file(), link
    student_view = inspect_page(browser, out / "bob" / "attention" / "student_report.html", "class-bob-student")
    assert student_view.console_errors == [] and "student view" in student_view.text
