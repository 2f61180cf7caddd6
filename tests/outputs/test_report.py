import json
import re
from pathlib import Path

import jsonschema
import pytest
from conftest import REFERENCE, bug_file

from autograder.outputs.report import write_atomic, write_reports
from autograder.pipeline import grade

SCHEMA = json.loads((Path(__file__).parents[2] / "autograder" / "outputs" / "schemas" /
                     "gradescope_results.schema.json").read_text())
MASK_INVERTED = bug_file("attention", "mask_inverted")


def test_results_json_follows_the_gradescope_schema(tmp_path):
    result = grade("attention", MASK_INVERTED, device="cpu")
    paths = write_reports(result, tmp_path)
    document = json.loads(paths["results"].read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["score"] == result.score and document["max_score"] == 20
    masking = next(test for test in document["tests"] if test["name"].startswith("masking:"))
    assert masking["status"] == "failed" and masking["score"] == 0 and "Expected:" in masking["output"]
    visibilities = {test["tags"][0]: test["visibility"] for test in document["tests"]}
    assert visibilities["large_inputs"] == "hidden" and visibilities["values_float64"] == "after_due_date"
    assert {"device", "seed", "protections", "timings"} <= set(document["extra_data"])


def test_schema_rejects_a_malformed_document():
    document = {"tests": [{"name": "x", "score": 1, "max_score": 1, "status": "maybe"}]}
    with pytest.raises(jsonschema.ValidationError, match="maybe"):
        jsonschema.validate(document, SCHEMA)


def test_student_view_hides_hidden_details_and_instructor_view_shows_them(tmp_path):
    result = grade("attention", bug_file("attention", "naive_softmax"), device="cpu")
    paths = write_reports(result, tmp_path)
    student, instructor = paths["student_report"].read_text(), paths["report"].read_text()
    hidden_message = result.outcome("large_inputs").verdict.message
    assert "contains NaN or Inf" in hidden_message
    assert "contains NaN or Inf" in instructor and "contains NaN or Inf" not in student
    assert "Result hidden from students" in student and "Result shown after the due date" in student
    # large_inputs (hidden) and values_float64 (after_due_date) are left out of the student's total
    assert "Score on the checks shown: 18 / 18" in student and "Score: 19 / 20" in instructor
    for page in (student, instructor):  # self-contained: nothing fetched from the network
        assert not re.search(r"""(src|href)=["']https?:""", page)
        assert "protections in force" in page


def test_reports_are_written_atomically(tmp_path, monkeypatch):
    result = grade("attention", REFERENCE, device="cpu")
    write_reports(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "results.json", "student_report.html"]
    target = tmp_path / "results.json"
    before = target.read_text()

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr("autograder.outputs.report.os.fsync", crash)
    try:
        write_atomic(target, "half a document")
    except OSError:
        pass
    else:
        raise AssertionError("the simulated crash did not happen")
    assert target.read_text() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_reports_get_the_permissions_of_an_ordinary_file(tmp_path):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x")
    write_atomic(tmp_path / "results.json", "{}")
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == ordinary.stat().st_mode & 0o777
