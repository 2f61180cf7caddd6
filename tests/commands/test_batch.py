"""grade-all: every pair graded once, problems reported not fatal, resumable by content hash,
and the same grades from a Dask cluster as from the local pool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from conftest import REFERENCE, REPO, bug_file, bug_files

from autograder.commands import batch
from autograder.commands.batch import BatchSummary, Job, JobResult, grade_all, grade_job

SCHEMA = json.loads((REPO / "autograder" / "outputs" / "schemas" / "gradescope_results.schema.json").read_text())
MASK_INVERTED = bug_file("attention", "mask_inverted")


def make_class(root: Path) -> Path:
    """alice: the reference; bob: a known bug plus a stray file; carol: an unreadable file;
    dave: nothing for attention, only a stray file; a stray file at the top."""
    for student in ("alice", "bob", "carol", "dave"):
        (root / student).mkdir(parents=True)
    shutil.copy(REFERENCE, root / "alice" / "attention.py")
    shutil.copy(MASK_INVERTED, root / "bob" / "attention.py")
    (root / "bob" / "notes.txt").write_text("my notes")
    (root / "carol" / "attention.py").symlink_to(root / "nowhere.py")  # dangling: cannot be read
    (root / "dave" / "homework.zip").write_bytes(b"PK")
    (root / "roster.csv").write_text("alice,bob\n")
    (root / "index.html").mkdir()  # a "student" whose reports would overwrite the summary
    shutil.copy(REFERENCE, root / "index.html" / "attention.py")
    return root


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = make_class(tmp_path_factory.mktemp("submissions"))
    out = tmp_path_factory.mktemp("graded")
    summary = grade_all(root, out, workers=2, names=["attention"], device="cpu")
    return root, out, summary


def test_every_pair_is_graded_into_its_own_folder_with_valid_results(graded_class):
    _, out, summary = graded_class
    assert sorted(summary.graded) == [("alice", "attention"), ("bob", "attention")]
    assert summary.completed and summary.students == ["alice", "bob", "carol", "dave"]
    scores = {}
    for student in ("alice", "bob"):
        folder = out / student / "attention"
        document = json.loads((folder / "results.json").read_text())
        jsonschema.validate(document, SCHEMA)
        assert (folder / "report.html").is_file() and (folder / "student_report.html").is_file()
        assert document["extra_data"]["student"] == student and len(document["extra_data"]["grade_key"]) == 64
        scores[student] = document["score"]
    assert scores["alice"] == 20 and scores["bob"] < 20


def test_bad_folders_are_reported_and_never_stop_the_batch(graded_class):
    _, out, summary = graded_class
    problems = "\n".join(f"{student}: {text}" for student, text in summary.problems)
    assert "bob: notes.txt: unexpected file" in problems
    assert "carol: attention: attention.py could not be read" in problems
    assert "dave: attention: no submission" in problems and "dave: homework.zip: unexpected file" in problems
    assert "(root): roster.csv: not a student folder" in problems
    assert "(root): index.html: a student folder may not be named like a summary file" in problems
    page = (out / "index.html").read_text()
    assert "could not be read" in page and "no submission" in page and "roster.csv" in page


def test_grades_csv_has_a_row_per_student_and_a_total(graded_class):
    _, out, _ = graded_class
    rows = (out / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,attention,total"
    alice = json.loads((out / "alice" / "attention" / "results.json").read_text())["score"]
    bob = json.loads((out / "bob" / "attention" / "results.json").read_text())["score"]
    assert rows[1:] == [f"alice,{alice:g},{alice:g}", f"bob,{bob:g},{bob:g}", "carol,,0", "dave,,0"]


def test_class_summary_lists_checks_most_failed_first_and_links_every_report(graded_class):
    _, out, _ = graded_class
    page = (out / "index.html").read_text()
    bob = json.loads((out / "bob" / "attention" / "results.json").read_text())
    failed_by_bob = [test["tags"][0] for test in bob["tests"] if test["status"] == "failed"]
    rows = [line for line in page.splitlines() if '<span class="name">' in line and "<td>" in line]
    order = [row.split('<span class="name">')[1].split("<")[0] for row in rows]
    assert failed_by_bob and set(order[:len(failed_by_bob)]) == set(failed_by_bob)  # 1/2 before 2/2
    for student in ("alice", "bob"):
        for name in ("report.html", "student_report.html"):
            assert f'href="{student}/attention/{name}"' in page
    assert "data:image/png;base64," in page and "median" in page


def test_rerun_keeps_unchanged_pairs_and_regrades_changed_ones(tmp_path):
    root = tmp_path / "submissions"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    shutil.copy(REFERENCE, root / "alice" / "attention.py")
    shutil.copy(REFERENCE, root / "bob" / "attention.py")
    out = tmp_path / "out"
    first = grade_all(root, out, workers=1, names=["attention"], device="cpu")
    assert len(first.graded) == 2 and not first.reused
    again = grade_all(root, out, workers=1, names=["attention"], device="cpu")
    assert not again.graded and sorted(again.reused) == [("alice", "attention"), ("bob", "attention")]
    shutil.copy(MASK_INVERTED, root / "bob" / "attention.py")
    changed = grade_all(root, out, workers=1, names=["attention"], device="cpu")
    assert changed.graded == [("bob", "attention")] and changed.reused == [("alice", "attention")]
    assert json.loads((out / "bob" / "attention" / "results.json").read_text())["score"] < 20
    forced = grade_all(root, out, workers=1, names=["attention"], device="cpu", force=True)
    assert len(forced.graded) == 2 and not forced.reused


def test_the_key_changes_with_the_submission_the_grader_and_the_device(tmp_path, monkeypatch):
    files = (("attention.py", b"x = 1\n"),)
    key = batch._job_key("attention", files, "cpu")
    assert key == batch._job_key("attention", files, "cpu")
    assert key != batch._job_key("attention", (("attention.py", b"x = 2\n"),), "cpu")
    assert key != batch._job_key("attention", files, "cuda")
    copy = tmp_path / "assignments"
    shutil.copytree(REPO / "assignments" / "attention", copy / "attention")
    monkeypatch.setattr(batch, "ASSIGNMENTS_DIR", copy)
    batch.grader_fingerprint.cache_clear()
    try:
        before = batch._job_key("attention", files, "cpu")
        (copy / "attention" / "bugs" / "new_bug.patch").write_text("Known bug: variants do not change grades\n")
        assert batch._job_key("attention", files, "cpu") == before
        with (copy / "attention" / "assignment.toml").open("a") as spec:
            spec.write("\n# a changed spec changes every grade's key\n")
        batch.grader_fingerprint.cache_clear()
        assert batch._job_key("attention", files, "cpu") != before
    finally:
        batch.grader_fingerprint.cache_clear()


def test_a_grader_failure_costs_only_its_pair(tmp_path, monkeypatch):
    root = tmp_path / "submissions"
    for student in ("alice", "bob"):
        (root / student).mkdir(parents=True)
        shutil.copy(REFERENCE, root / student / "attention.py")

    def run_jobs(jobs, **_):  # bob's grading process breaks; alice's completes
        for job in jobs:
            if job.student == "bob":
                yield JobResult(job.student, job.assignment, error="the grader broke")
            else:
                yield grade_job(job)

    monkeypatch.setattr(batch, "run_jobs", run_jobs)
    summary = grade_all(root, tmp_path / "out", names=["attention"], device="cpu")
    assert summary.failed == [("bob", "attention")] and summary.graded == [("alice", "attention")]
    assert not summary.completed and not (tmp_path / "out" / "bob" / "attention").exists()
    assert "grader failed" in (tmp_path / "out" / "index.html").read_text()
    assert (tmp_path / "out" / "grades.csv").read_text().splitlines()[2] == "bob,,0"


def test_grade_job_turns_a_grader_error_into_a_message():
    result = grade_job(Job("alice", "no_such_assignment", (("x.py", b""),), False, "k", "cpu"))
    assert result.error and "no_such_assignment" in result.error and not result.pages


def test_a_folder_submission_is_graded_with_its_helper_files(tmp_path):
    folder = tmp_path / "submissions" / "alice" / "attention"
    folder.mkdir(parents=True)
    source = REFERENCE.read_text()
    (folder / "attention.py").write_text("from helpers import *  # noqa\n" + source)
    (folder / "helpers.py").write_text("HELPER = 1\n")
    summary = grade_all(tmp_path / "submissions", tmp_path / "out", workers=1, names=["attention"], device="cpu")
    assert summary.graded == [("alice", "attention")] and not summary.problems
    assert json.loads((tmp_path / "out" / "alice" / "attention" / "results.json").read_text())["score"] == 20


def attention_notebook(path: Path, *, output_mb: int = 0, padding_mb: int = 0) -> Path:
    """solutions/attention.py as one code cell (plus ``padding_mb`` MB of comment lines), with
    ``output_mb`` MB of PNG in the cell's outputs, as a notebook run with plots is."""
    import base64

    import nbformat

    code = REFERENCE.read_text() + "\n".join(["# " + "x" * 1022] * (padding_mb * 1024))
    cell = nbformat.v4.new_code_cell(code, execution_count=1)
    if output_mb:
        png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(output_mb * 3 * 2**18)).decode()
        cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": png})]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nbformat.v4.new_notebook(cells=[cell])))
    return path


def test_outputs_never_count_against_the_size_limit_only_the_code_does(tmp_path):
    from autograder.pipeline import grade
    from autograder.submission.size import MAX_CODE_BYTES, MAX_FILE_BYTES

    root, out = tmp_path / "submissions", tmp_path / "out"
    plots = attention_notebook(root / "erin" / "attention.ipynb", output_mb=30)
    assert plots.stat().st_size > 30 * 2**20
    padded = attention_notebook(root / "fred" / "attention.ipynb", padding_mb=MAX_CODE_BYTES // 2**20 + 1)
    huge = root / "gina" / "attention.py"
    huge.parent.mkdir()
    with huge.open("wb") as stream:  # sparse: nothing is written, nothing may read it
        stream.truncate(MAX_FILE_BYTES + 2**20)
    summary = grade_all(root, out, workers=1, names=["attention"], device="cpu")
    assert summary.graded == [("erin", "attention")] and summary.completed
    document = json.loads((out / "erin" / "attention" / "results.json").read_text())
    assert document["score"] == 20, document["output"]
    notice = "attention.ipynb carries 30 MB of cell outputs (plots, printed text): outputs are not graded; clear outputs to keep the file small"
    assert notice in document["output"] and notice in (out / "erin" / "attention" / "student_report.html").read_text()
    # the key is of the file as handed in, outputs included (the notice names their size)
    assert document["extra_data"]["grade_key"] == batch._job_key("attention", (("attention.ipynb", plots.read_bytes()),), "cpu")
    problems = dict(summary.problems)
    assert problems["fred"].startswith("attention: attention.ipynb not graded: the code of attention.ipynb is 21 MB, "
                                       "more than the 20 MB graded (what counts: .py files whole, and a "
                                       "notebook's code cells, never their outputs")
    assert problems["gina"].startswith("attention: attention.py not graded: attention.py is 201 MB, more than the "
                                       "200 MB a submission may be as handed in")
    assert grade_all(root, out, workers=1, names=["attention"], device="cpu").reused == [("erin", "attention")]
    [job] = batch.find_jobs(root, ["attention"], "cpu", BatchSummary(out))
    assert len(job.files[0][1]) < 2**20 and job.notices  # the job carries the code, not the plots
    for path in (padded, huge):  # `grade` applies the same rule: zero, with the same message
        alone = grade("attention", path, device="cpu")
        assert alone.score == 0 and f"Not graded: {problems[path.parent.name].split(' not graded: ')[1]}" in alone.notices
        assert alone.outcomes[0].verdict.message == "not run: your submission is too large to grade"


def test_cli_grade_all_reports_a_missing_root_and_a_scheduler_without_dask(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "autograder", "grade-all", *args],
                              capture_output=True, text=True, timeout=120)
    missing = cli(str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert missing.returncode == 2 and "submissions folder not found" in missing.stderr
    mixed = cli(str(tmp_path), "--scheduler", "tcp://127.0.0.1:1")
    assert mixed.returncode == 2 and "--executor dask" in mixed.stderr
    unknown = cli(str(tmp_path), "--assignments", "nope")
    assert unknown.returncode == 2 and "unknown assignment" in unknown.stderr
    no_workers = cli(str(tmp_path), "--workers", "0")
    assert no_workers.returncode == 2 and "--workers must be at least 1" in no_workers.stderr


def test_dask_cluster_gives_the_same_grades_as_the_local_pool(graded_class, tmp_path):
    distributed = pytest.importorskip("distributed")
    root, local_out, _ = graded_class
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        summary = grade_all(root, tmp_path / "dask", names=["attention"], device="cpu",
                            scheduler=cluster.scheduler_address)
    assert sorted(summary.graded) == [("alice", "attention"), ("bob", "attention")]

    def grades(out: Path, student: str) -> dict:
        document = json.loads((out / student / "attention" / "results.json").read_text())
        return {"score": document["score"],
                "tests": [(t["name"], t["score"], t["status"], t["output"]) for t in document["tests"]]}

    for student in ("alice", "bob"):
        assert grades(tmp_path / "dask", student) == grades(local_out, student)
    assert (tmp_path / "dask" / "grades.csv").read_text() == (local_out / "grades.csv").read_text()


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(batch, "DASK_CONNECT_TIMEOUT_S", 2)
    from autograder.pipeline import GraderError

    jobs = [Job("alice", "attention", (("attention.py", REFERENCE.read_bytes()),), False, "k", "cpu")]
    with pytest.raises(GraderError, match="could not reach the Dask scheduler"):
        list(batch.run_jobs(jobs, scheduler="tcp://127.0.0.1:9"))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_as_root_the_output_folder_is_closed_to_the_worker_user(graded_class):
    _, out, _ = graded_class
    assert out.stat().st_mode & 0o777 == 0o700  # a worker that runs as another user cannot look in


def test_summary_object_is_complete_only_without_grader_failures(tmp_path):
    summary = BatchSummary(tmp_path)
    assert summary.completed
    summary.failed.append(("a", "b"))
    assert not summary.completed


def test_summary_names_the_most_common_failure_of_each_check(graded_class):
    _, out, summary = graded_class
    from autograder.outputs.summary import collect

    bob = json.loads((out / "bob" / "attention" / "results.json").read_text())
    failed = next(test for test in bob["tests"] if test["status"] == "failed")
    rate = collect(summary)["attention"].checks[failed["tags"][0]]
    message, count = rate.common_failure()
    assert count == 1 and failed["output"].startswith(f"Failed: {message}")
    assert collect(summary)["attention"].checks["shapes"].common_failure() is None  # everyone passed


def test_example_class_hands_in_every_reference_skeleton_and_known_bug(tmp_path):
    from autograder.commands.examples import assignment_names, example_class, reference_copies

    root = example_class(tmp_path / "class")
    names = assignment_names()
    assert sorted(p.stem for p in (root / "reference").iterdir()) == names
    assert (root / "reference" / "attention.py").read_text() == REFERENCE.read_text()
    assert sorted(p.stem for p in (root / "skeleton").iterdir()) == names
    handed_in = sorted((student.name, path.read_text()) for student in root.glob("bugs-*") for path in student.iterdir())
    every_bug = sorted(path.read_text() for name in names for path in bug_files(name))
    assert sorted(text for _, text in handed_in) == every_bug
    copies = reference_copies(tmp_path / "copies", 3, ["attention", "char_rnn"])
    assert sorted(str(p.relative_to(copies)) for p in copies.rglob("*.py")) == [
        f"student-0{n}/{name}.py" for n in (1, 2, 3) for name in ("attention", "char_rnn")]
