import json
import subprocess
import sys

import pytest
import torch
from conftest import REFERENCE


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_grade_writes_results_and_report_and_exits_zero(tmp_path):
    out = tmp_path / "out"
    done = run_cli("grade", "attention", str(REFERENCE), "--out", str(out), "--device", "cpu", "--seed", "3")
    assert done.returncode == 0, done.stderr
    document = json.loads((out / "results.json").read_text())
    assert document["score"] == 20 and document["extra_data"]["seed"] == 3
    assert (out / "report.html").is_file() and "Score: 20 / 20" in done.stdout


def test_a_failing_submission_still_exits_zero(tmp_path, submission):
    path = submission(append="\nraise ValueError('boom')\n")
    done = run_cli("grade", "attention", str(path), "--out", str(tmp_path / "out"), "--device", "cpu",
                   "--top-level", "all")
    assert done.returncode == 0
    assert json.loads((tmp_path / "out" / "results.json").read_text())["score"] == 0


def test_bad_path_and_unknown_assignment_exit_non_zero_with_a_message(tmp_path):
    missing = run_cli("grade", "attention", str(tmp_path / "nope.py"), "--out", str(tmp_path))
    assert missing.returncode == 2 and "submission not found" in missing.stderr
    unknown = run_cli("grade", "nonexistent", str(REFERENCE), "--out", str(tmp_path))
    assert unknown.returncode == 2 and "no assignment called 'nonexistent'" in unknown.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present; test_attention covers --device cuda")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path):
    done = run_cli("grade", "attention", str(REFERENCE), "--out", str(tmp_path), "--device", "cuda")
    assert done.returncode == 2 and "no usable CUDA GPU" in done.stderr


def test_template_check_reports_nothing_stale():
    done = run_cli("template", "--check")
    assert done.returncode == 0 and done.stdout.strip() == ""
