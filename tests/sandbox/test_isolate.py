"""The worker boundary on its own: a tiny assignment whose probes call whatever function the
test names, against submissions that misbehave in every way the harness promises to survive."""

from __future__ import annotations

import os
import secrets
import textwrap
import time

import psutil
import pytest
import torch

from autograder.sandbox.isolate import WorkerJob, run_in_worker
from autograder.spec import Limits
from autograder.toolkit.check import derive_seed

CHECKS = '''
from autograder.toolkit.check import Check


def make(check_name):
    class Call(Check):
        name = check_name
        needs_reference = False

        @staticmethod
        def probe(student, inputs, device):
            return getattr(student, inputs["fn"])(*inputs.get("args", []))
    return Call


first, second, third = make("first"), make("second"), make("third")
'''
LIMITS = Limits(import_timeout_s=30, memory_mb=3072, output_kb=16, result_mb=16)


@pytest.fixture
def run_probes(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "checks.py").write_text(CHECKS)

    def run(source: str, calls: dict, *, timeout: float = 10.0, limits: Limits = LIMITS):
        submission = tmp_path / "tiny.py"
        submission.write_text(textwrap.dedent(source))
        job = WorkerJob(assignment="tiny", assignment_folder=folder, submission_file=submission,
                        inputs={name: {"fn": fn} for name, fn in calls.items()},
                        timeouts={name: timeout for name in calls}, seed=7, device="cpu", limits=limits)
        started = time.monotonic()
        result = run_in_worker(job)
        result.elapsed = time.monotonic() - started
        return result
    return run


BASE = """
import os, sys, time, subprocess
import torch
def answer():
    return 42
"""


def test_plain_data_comes_back_per_check(run_probes):
    run = run_probes(BASE, {"first": "answer", "second": "answer"})
    assert run.import_error is None and run.workers_started == 1
    assert [run.probes[name]["value"] for name in ("first", "second")] == [42, 42]
    assert {"worker_start_s", "torch_import_s", "submission_import_s"} <= set(run.timings)


def test_os_exit_in_a_function_costs_that_check_only(run_probes):
    run = run_probes(BASE + "def die():\n    os._exit(0)\n", {"first": "answer", "second": "die", "third": "answer"})
    assert run.probes["first"]["ok"] and run.probes["third"]["ok"]
    error = run.probes["second"]["error"]
    assert error["type"] == "WorkerDied" and "exited with code 0" in error["hint"]
    assert run.workers_started == 2  # a fresh worker resumed after the dead one


def test_infinite_loop_is_killed_at_its_cap_and_the_rest_still_runs(run_probes):
    run = run_probes(BASE + "def spin():\n    while True:\n        pass\n",
                     {"first": "spin", "second": "answer"}, timeout=2.0)
    assert "did not finish within this check's 2 s limit" in run.probes["first"]["error"]["hint"]
    assert run.probes["second"]["value"] == 42
    assert run.elapsed < 2.0 + 2 * LIMITS.import_timeout_s


def test_the_whole_process_tree_is_killed_even_a_child_in_its_own_session(run_probes):
    # the sandbox hides the test's folders and pids: the child is found by an argument of this
    # run's own (another run of the suite on the machine has other digits)
    token = f"301.5{os.getpid()}{secrets.randbelow(10**6):06d}"
    source = BASE + f"""
def spawn_and_hang():
    subprocess.Popen(["sleep", "{token}"], start_new_session=True)
    while True:
        time.sleep(0.05)
"""
    run = run_probes(source, {"first": "spawn_and_hang"}, timeout=2.0)
    assert not run.probes["first"]["ok"]
    assert not survivors(token), "the grandchild survived the kill"


def survivors(token: str) -> list[psutil.Process]:
    """Live processes whose command line holds ``token``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if token in " ".join(process.info["cmdline"] or []) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_sys_exit_at_import_is_an_import_error_with_a_hint(run_probes):
    run = run_probes(BASE + "sys.exit(0)\n", {"first": "answer"})
    assert run.import_error["type"] == "SystemExit" and "exit()" in run.import_error["hint"]
    assert run.probes == {}


def test_os_exit_and_endless_loop_at_import(run_probes):
    died = run_probes(BASE + "os._exit(3)\n", {"first": "answer"})
    assert "exited with code 3" in died.import_error["message"]
    assert "__main__" in died.import_error["hint"]
    limits = Limits(import_timeout_s=8, memory_mb=3072, output_kb=16, result_mb=16)
    hung = run_probes(BASE + "while True:\n    pass\n", {"first": "answer"}, limits=limits)
    assert "did not finish importing within 8 s" in hung.import_error["message"]
    assert hung.elapsed < 8 + 30  # the watchdog at 8 s, not the CPU-time backstop (108 s here), ended it


def test_memory_blow_up_is_a_failed_check_not_a_dead_grader(run_probes):
    source = BASE + "def hog():\n    chunks = []\n    while True:\n        chunks.append(torch.ones(2**25))\n"
    run = run_probes(source, {"first": "hog", "second": "answer"},
                     limits=Limits(import_timeout_s=30, memory_mb=2048, output_kb=16, result_mb=16))
    error = run.probes["first"]["error"]
    assert "memory" in (error.get("hint") or "") + error["message"]
    assert run.probes["second"]["value"] == 42


def test_output_flood_is_capped_and_the_check_still_counts(run_probes):
    source = BASE + "def shout():\n    print('x' * 10_000_000)\n    os.write(1, b'y' * 5_000_000)\n    return 1\n"
    run = run_probes(source, {"first": "shout"})
    assert run.probes["first"]["value"] == 1
    cap = LIMITS.output_kb * 1024
    assert cap <= len(run.probes["first"]["stdout"]) < cap + 100  # kept up to the cap, then a note
    assert "more characters not kept" in run.probes["first"]["stdout"]
    assert len(run.output) < cap + 100 and "more bytes of output not kept" in run.output


def test_oversized_return_value_is_refused_with_a_message(run_probes):
    run = run_probes(BASE + "def huge():\n    return torch.zeros(8_000_000)\n", {"first": "huge", "second": "answer"})
    assert "more than the 16 MB" in run.probes["first"]["error"]["message"]
    assert run.probes["second"]["value"] == 42


def test_a_return_value_that_cannot_be_encoded_fails_only_its_check(run_probes):
    source = BASE + ("class Evil(torch.Tensor):\n    def detach(self):\n        raise RuntimeError('gotcha')\n"
                     "def evil():\n    return torch.zeros(3).as_subclass(Evil)\n")
    run = run_probes(source, {"first": "evil", "second": "answer"})
    assert run.probes["first"]["error"]["type"] == "UnreadableResult"
    assert "gotcha" in run.probes["first"]["error"]["message"]
    assert run.probes["second"]["value"] == 42 and run.workers_started == 1


def test_one_torch_thread_seeded_rng_and_scratch_cwd(run_probes, tmp_path):
    source = BASE + ("torch.manual_seed(123)\nimport random; random.seed(5)\n"
                     "def threads():\n    return torch.get_num_threads()\n"
                     "def draw():\n    return torch.rand(3)\n"
                     "def where():\n    return os.getcwd()\n")
    run = run_probes(source, {"first": "threads", "second": "draw", "third": "where"})
    assert run.probes["first"]["value"] == 1
    expected = torch.Generator().manual_seed(derive_seed(7, "second", "probe"))
    assert torch.equal(run.probes["second"]["value"], torch.rand(3, generator=expected))
    assert str(tmp_path) not in run.probes["third"]["value"]  # the worker works in a scratch folder


def test_a_worker_that_cannot_start_is_not_blamed_on_the_student(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "checks.py").write_text(CHECKS + "\nraise RuntimeError('bug in the grader')\n")
    submission = tmp_path / "broken.py"
    submission.write_text(BASE)
    run = run_in_worker(WorkerJob(assignment="broken", assignment_folder=folder, submission_file=submission,
                                  inputs={"first": {"fn": "answer"}}, timeouts={"first": 10.0}, seed=0,
                                  device="cpu", limits=LIMITS))
    assert run.import_error["type"] == "WorkerStartFailed"
    assert "not your code's fault" in run.import_error["hint"]
    assert "bug in the grader" in run.output  # the instructor sees why
