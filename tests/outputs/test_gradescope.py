"""Gradescope packaging (autograder/outputs/gradescope.py): the zip, its scripts, the Docker folder, the
real run_autograder in a replica of /autograder. (The worker's user: test_privileges.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest
from conftest import REFERENCE, REPO, bug_file

from autograder.outputs import gradescope
from autograder.pipeline import GraderError
from autograder.spec import load_spec, student_requirements

SCHEMA = json.loads((REPO / "autograder" / "outputs" / "schemas" / "gradescope_results.schema.json").read_text())
MASK_INVERTED = bug_file("attention", "mask_inverted")
ROOT_ONLY = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return gradescope.build("attention", tmp_path_factory.mktemp("dist"))


def unpack(archive: Path, target: Path) -> None:
    """Unzip as Gradescope does, keeping each entry's permission bits."""
    with zipfile.ZipFile(archive) as bundle:
        for entry in bundle.infolist():
            path = Path(bundle.extract(entry, target))
            path.chmod((entry.external_attr >> 16) & 0o777)


def test_zip_holds_the_scripts_the_grader_and_the_reference_but_no_bugs(built):
    assert built.name == "attention-gradescope.zip"
    with zipfile.ZipFile(built) as bundle:
        entries = {entry.filename: entry for entry in bundle.infolist()}
        for script in ("setup.sh", "run_autograder"):
            assert (entries[script].external_attr >> 16) & 0o111 == 0o111, f"{script} is not executable"
            assert b"\r" not in bundle.read(script) and bundle.read(script).startswith(b"#!/usr/bin/env bash\n")
    for name in ("requirements.txt", "autograder/pipeline.py", "autograder/sandbox/worker.py", "autograder/outputs/gradescope.py",
                 "autograder/outputs/templates/report.html.j2", "autograder/outputs/schemas/gradescope_results.schema.json",
                 "autograder/students/student_files/test_public.py", "assignments/attention/assignment.toml",
                 "assignments/attention/checks.py", "assignments/attention/hidden_checks.py",
                 "assignments/attention/handout.md", "solutions/attention.py"):
        assert name in entries, name
    assert not [name for name in entries if {"bugs", "calibration", "__pycache__"} & set(name.split("/"))
                or name.endswith(".pyc")]
    assert [name for name in entries if name.startswith("solutions/")] == ["solutions/attention.py"]
    assert not [name for name in entries if name.startswith("assignments/") and "/attention/" not in name]


def test_hidden_data_ships_and_calibration_does_not(tmp_path):
    with zipfile.ZipFile(gradescope.build("attention_heatmaps", tmp_path)) as bundle:
        names = bundle.namelist()
    assert "assignments/attention_heatmaps/data/paragraph.txt" in names
    assert "solutions/attention_heatmaps.py" in names
    assert not [name for name in names if "/calibration/" in name or "/bugs/" in name]


def test_requirements_pin_this_environment_with_the_cpu_torch(built):
    with zipfile.ZipFile(built) as bundle:
        text = bundle.read("requirements.txt").decode()
    lines = text.splitlines()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert f"torch=={metadata.version('torch').split('+')[0]}" in lines and "+" not in text
    for name in ("numpy", "matplotlib", "jinja2", "rich", "jsonschema", "psutil", "nbformat"):
        assert f"{name}=={metadata.version(name)}" in lines
    for name, requirement in student_requirements().items():  # what students may import, always
        try:
            assert f"{name}=={metadata.version(name).split('+')[0]}" in lines
        except metadata.PackageNotFoundError:
            assert requirement in lines


def test_a_student_library_missing_where_the_zip_is_built_is_still_required(monkeypatch):
    real = metadata.packages_distributions
    monkeypatch.setattr(metadata, "packages_distributions",
                        lambda: {key: value for key, value in real().items() if key != "einops"})
    assert "einops>=0.6" in gradescope.requirements(load_spec("attention")).splitlines()


def test_a_local_tag_is_stripped_from_the_torch_pin(monkeypatch):
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "2.13.0+cu126" if name == "torch" else real(name))
    assert "torch==2.13.0\n" in gradescope.requirements(load_spec("attention"))


def test_scripts_parse_and_the_dockerfile_builds_on_gradescopes_image(built, tmp_path):
    unpack(built, tmp_path / "source")
    for script in ("setup.sh", "run_autograder"):
        done = subprocess.run(["bash", "-n", str(tmp_path / "source" / script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    setup = (tmp_path / "source" / "setup.sh").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup and "pip install --no-cache-dir -r" in setup
    assert "useradd --system" in setup and "autograder-student" in setup and 'chmod -R o= "$private"' in setup
    assert "apt-get install -y --no-install-recommends bubblewrap" in setup
    docker = built.parent / "attention-docker"
    text = (docker / "Dockerfile").read_text()
    assert "ARG BASE_REPO=gradescope/autograder-base" in text and "FROM ${BASE_REPO}:${TAG}" in text
    assert "COPY source /autograder/source" in text
    assert "cp /autograder/source/run_autograder /autograder/run_autograder" in text
    assert "bash /autograder/source/setup.sh" in text
    readme = (docker / "README.md").read_text()
    assert "docker build" in readme and "/autograder/submission" in readme and "/autograder/run_autograder" in readme
    shipped = {path.relative_to(docker / "source").as_posix(): path.read_bytes()
               for path in (docker / "source").rglob("*") if path.is_file()}
    with zipfile.ZipFile(built) as bundle:  # the Docker build context holds exactly the zip's files
        assert shipped == {name: bundle.read(name) for name in bundle.namelist()}


def test_run_autograder_grades_a_submission_in_a_replica_of_the_autograder_tree(built, tmp_path):
    root = tmp_path / "autograder"
    unpack(built, root / "source")
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")  # as Gradescope's build does
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}

    def run_autograder(files: dict[str, Path]) -> dict:
        shutil.rmtree(root / "submission", ignore_errors=True)
        for name, source in files.items():
            (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / "submission" / name)
        done = subprocess.run([str(root / "run_autograder")], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        document = json.loads((root / "results" / "results.json").read_text())
        jsonschema.validate(document, SCHEMA)
        return document

    reference = run_autograder({"attention.py": REFERENCE, "notes.txt": REFERENCE})
    assert reference["score"] == reference["max_score"] == 20
    assert reference["extra_data"]["grader_path"] == str(root / "source" / "autograder")  # the zip's copy ran
    assert any(line.startswith(("worker ran as", "grader runs as root but could not drop"))
               for line in reference["extra_data"]["protections"])
    assert (root / "results" / "report.html").is_file() and (root / "results" / "student_report.html").is_file()

    broken = run_autograder({"my_folder/attention.py": MASK_INVERTED})  # a zip of a folder, uploaded
    assert broken["score"] < 20
    masking = next(test for test in broken["tests"] if test["name"].startswith("masking:"))
    assert masking["status"] == "failed"


def test_a_grader_failure_still_writes_a_results_json_and_exits_one(built, tmp_path):
    root = tmp_path / "autograder"
    unpack(built, root / "source")
    (root / "submission").mkdir()
    missing = gradescope.run(root / "elsewhere", "attention")  # no submission folder at all
    document = json.loads((root / "elsewhere" / "results" / "results.json").read_text())
    jsonschema.validate(document, SCHEMA)
    assert missing == 1 and document["score"] == 0 and "not in your code" in document["output"]
    assert "submission not found" in document["extra_data"]["grader_error"]

    done = subprocess.run([str(root / "source" / "run_autograder")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": "false"})
    document = json.loads((root / "results" / "results.json").read_text())  # Python never started
    jsonschema.validate(document, SCHEMA)
    assert done.returncode == 1 and document["score"] == 0 and "could not start" in document["output"]


def test_a_folder_inside_the_submission_is_found(tmp_path):
    spec = load_spec("attention")
    (tmp_path / "deep" / "hw").mkdir(parents=True)
    (tmp_path / "deep" / "hw" / "attention.ipynb").write_text("{}")
    assert gradescope.submission_folder(tmp_path, spec) == tmp_path / "deep" / "hw"
    (tmp_path / "attention.py").write_text("")
    assert gradescope.submission_folder(tmp_path, spec) == tmp_path


def test_unknown_assignment_is_a_clear_error_and_a_non_zero_exit(tmp_path):
    with pytest.raises(GraderError, match="no assignment called 'nope'"):
        gradescope.build("nope", tmp_path)
    done = subprocess.run([sys.executable, "-m", "autograder", "gradescope", "nope", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no assignment called 'nope'" in done.stderr
    assert not list(tmp_path.iterdir())
