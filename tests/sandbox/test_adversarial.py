"""Submissions that attack the grader, graded in one real batch (grade-all, two workers) per
protection level: the best this machine offers, and the fallback with neither bubblewrap nor
cgroups (rlimits, socket filter, subreaper, and the user drop where there is one).

Every attacker is an attention.py whose attack runs at import (hidden in a class body, which
the reduction to definitions keeps) or in ``softmax_with_and_without_scaling``, which only
the ``scaling_demo`` check calls. Two honest neighbours (the reference) are graded in the same
batch. Each test asserts: zero for the attacked checks, a message that names what happened,
the neighbours' grades equal to a grade of the reference on its own, no file outside the
worker's scratch folder changed, and no process of this test's own left behind.

Leftovers are this test's own processes only, so that the suite holds while another grade-all
(or another run of this suite) works on the same machine: the batch runs with TMPDIR set to a
folder of its own, so every warden, bwrap and worker it starts names that folder on its command
line (the scratch folder and job file are in it), and the attacks' sleeps carry a number unique
to this run. Descent from the test process would not do: a daemon that double-forks, or a
child that outlives the warden, is adopted by init, which is exactly what must be caught.

Every attack is bounded so that the suite is safe where a protection is missing: at most a few
GiB, a few dozen processes, a minute, and loopback only; attacks on files only aim at this
test's own folders, and run only where a protection should stop them.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import REFERENCE, REPO, SKELETON

from autograder.commands.batch import grade_all
from autograder.pipeline import grade
from autograder.sandbox import containment
from autograder.sandbox.privileges import unreachable

ASSIGNMENT = "attention"
ATTACKED_FUNCTION = "softmax_with_and_without_scaling"  # called by the scaling_demo check only
ATTACKED_CHECK = "scaling_demo"
NEIGHBOURS = ("zz-neighbour-a", "zz-neighbour-b")
TIMEOUT_SCALE = 0.5  # import cap 30 s, check caps 10 s (30 s for gradcheck): runaways end sooner
HIDDEN_CHECKS = REPO / "assignments" / ASSIGNMENT / "hidden_checks.py"
HIDDEN_DATA = REPO / "assignments" / "char_rnn" / "data" / "moby_dick.txt"
HIDDEN_MARKER = "sums = weights.to(torch.float64).sum(-1)"  # a line of a verdict in hidden_checks.py
DATA_MARKER = "Call me Ishmael"
RUN = f"{os.getpid()}{secrets.randbelow(10**6):06d}"  # this run's own digits (see the docstring)
SLEEPS = {name: f"{seconds}{RUN}" for name, seconds in  # `sleep 120.777<RUN>`: about 2 minutes
          (("fork-bomb", "120.777"), ("ignores-sigterm", "121.333"), ("daemon-grandchild", "122.555"))}


@dataclass(frozen=True)
class Attack:
    code: str  # at import: the body of a class; in the function: its body
    where: str  # "import" or "function"
    on_files: bool = False  # aims at files: run only where the sandbox or the user drop stops it
    base: str = "reference"  # what the rest of the file is: "reference" or "skeleton"


def _steal() -> str:
    return textwrap.dedent(f"""
    import glob, sys
    found = []
    paths = [{str(REFERENCE)!r}, {str(HIDDEN_CHECKS)!r}, {str(HIDDEN_DATA)!r}, *sys.argv[1:2]]
    for path in paths:  # the reference, hidden checks, hidden data, and this worker's own job file
        try:
            text = open(path, errors="replace").read()
            at = max(text.find("def verdict"), text.find("def inputs"), 0)  # grader-only code, if any
            found.append(f"READ {{path}}: {{text[at:at + 1200]}}")
            if path.endswith("attention.py"):
                exec(text, globals())
        except OSError as error:
            found.append(f"could not read {{path}}: {{error}}")
    raise RuntimeError(" | ".join(found))
""")


ATTACKS = {
    "exit-at-import": Attack("import os\nos._exit(0)", "import"),
    "sys-exit-at-import": Attack("import sys\nsys.exit(0)", "import"),
    "loop-at-import": Attack("while True:\n    pass", "import"),
    "loop-in-function": Attack("while True:\n    pass", "function"),
    # 6 GiB held: on CPU the address-space cap trips first (before the cgroup's RSS cap), at the
    # reservation, so how fast a busy machine can fill pages does not decide the message (growth
    # filled page by page is tested in test_isolate.py and test_cgroups.py, with time to spare)
    "memory-bomb": Attack("import torch\nheld = []\nfor _ in range(24):\n"
                          "    held.append(torch.empty(2**26))", "function"),
    "fork-bomb": Attack("import subprocess\nfor _ in range(48):\n"
                        f"    subprocess.Popen(['sleep', '{SLEEPS['fork-bomb']}'])\nreturn None", "function"),
    "stdout-flood": Attack("import os\nfor _ in range(200):\n    os.write(1, b'x' * 2**20)\nreturn None", "function"),
    "patched-comparisons": Attack(
        "import math, numpy, torch\nyes = lambda *args, **kwargs: True\n"
        "torch.allclose = numpy.allclose = math.isclose = torch.equal = yes\n"
        "torch.testing.assert_close = lambda *args, **kwargs: None\n"
        "torch.Tensor.allclose = torch.Tensor.equal = yes\n"
        "shape = (*Q.shape[:-1], K.shape[-2])  # the right shape, the wrong values\n"
        "return torch.zeros(shape), torch.zeros(shape)", "function"),
    "lying-tensor": Attack(
        "import torch\nclass Liar(torch.Tensor):\n    def __eq__(self, other):\n        return True\n"
        "    @classmethod\n    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        if func in (torch.allclose, torch.equal, torch.Tensor.allclose, torch.Tensor.equal):\n"
        "            return True\n        return super().__torch_function__(func, types, args, kwargs or {})\n"
        "shape = (*Q.shape[:-1], K.shape[-2])\n"
        "return torch.zeros(shape).as_subclass(Liar), torch.zeros(shape).as_subclass(Liar)",
        "function"),
    "network": Attack("import socket\nconnection = socket.create_connection(('127.0.0.1', PORT), timeout=5)\n"
                      "connection.sendall(b'stolen')\nreturn None", "function"),
    "ignores-sigterm": Attack("import signal, subprocess\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                              f"subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep {SLEEPS['ignores-sigterm']}'])\n"
                              "while True:\n    pass", "function"),
    "atexit-forgery": Attack("import atexit, glob, json, os, sys\n"
                             "def forge():\n    for folder in ['.', OUT_DIR, *glob.glob(OUT_DIR + '/*/*')]:\n"
                             "        try:\n            open(os.path.join(folder, 'results.json'), 'w').write(FORGED)\n"
                             "        except OSError:\n            pass\n"
                             "atexit.register(forge)\nsys.exit(0)", "function"),
    "daemon-grandchild": Attack("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                                f"        os.execv('/bin/sleep', ['sleep', '{SLEEPS['daemon-grandchild']}'])\n"
                                "    os._exit(0)\n"
                                "time.sleep(0.5)\nreturn None", "function"),
    "read-grader-files": Attack(_steal(), "import", on_files=True, base="skeleton"),
    "forge-results": Attack(
        "import glob, os\nfor folder in ['.', '..', OUT_DIR, *glob.glob(OUT_DIR + '/*/*'), CLASS_ROOT,\n"
        "               *glob.glob(CLASS_ROOT + '/*')]:\n"
        "    try:\n        open(os.path.join(folder, 'results.json'), 'w').write(FORGED)\n    except OSError:\n        pass\n"
        "raise SystemExit('forged')", "import", on_files=True),
    "tamper-neighbours": Attack(
        "import os\nfor path in [CLASS_ROOT + '/zz-neighbour-a/attention.py']:\n"
        "    try:\n        os.remove(path)\n    except OSError:\n        pass\n"
        "try:\n    open(CLASS_ROOT + '/zz-neighbour-b/attention.py', 'a').write('\\nraise SystemExit(1)\\n')\n"
        "except OSError:\n    pass\nraise SystemExit('tampered')", "import", on_files=True),
}
RETURNED_NOTHING = "should return a tuple of 2 items"
FUNCTION_MESSAGES = {  # what the attacked check's message must say
    "loop-in-function": "did not finish within",
    "memory-bomb": "memory",
    "fork-bomb": RETURNED_NOTHING,  # where a process limit is in force: its hint (see the test)
    "stdout-flood": RETURNED_NOTHING,
    "patched-comparisons": "differs from the reference",  # judged in the grading process all the same
    "lying-tensor": "differs from the reference",
    "network": "network",
    "ignores-sigterm": "did not finish within",
    "atexit-forgery": "exit()",
    "daemon-grandchild": RETURNED_NOTHING,
}
IMPORT_MESSAGES = {
    "exit-at-import": "exited with code 0",
    "sys-exit-at-import": "exit()",
    "loop-at-import": "did not finish importing",
    "read-grader-files": "could not read",
    "forge-results": "forged",
    "tamper-neighbours": "tampered",
}
LEVELS = {"best": {}, "fallback": {containment.SANDBOX_VARIABLE: "off", containment.CGROUPS_VARIABLE: "off"}}


def _attacker_source(attack: Attack, constants: str) -> str:
    base = (SKELETON if attack.base == "skeleton" else REFERENCE).read_text()
    body = "\n".join("    " + line for line in attack.code.strip().splitlines())
    if attack.where == "import":
        return f"{base}\n{constants}\n\nclass _Attack:  # a class body runs at import\n{body}\n"
    return f"{base}\n{constants}\n\ndef {ATTACKED_FUNCTION}(Q, K):\n{body}\n"


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()


def _snapshot(*folders: Path) -> dict[str, str]:
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _leftovers(scratch_root: Path) -> list[str]:
    """Live processes of this test's own: their command line names the batch's scratch root
    (wardens, bwrap, workers and their forks) or one of this run's sleeps. Another batch's
    workers, or another suite's attacks, name neither."""
    markers = (str(scratch_root), *SLEEPS.values())
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        line = " ".join(process.info["cmdline"] or [])
        if process.info["status"] != psutil.STATUS_ZOMBIE and any(marker in line for marker in markers):
            found.append(line[:200])
    return found


def _scratch_root() -> Path:
    """A folder of this batch's own for every scratch folder (TMPDIR), in the system's temporary
    folder: a worker that runs as another user may pass through it (0o711), not list it."""
    root = Path(tempfile.mkdtemp(prefix="autograder-adversarial-", dir=tempfile.gettempdir()))
    root.chmod(0o711)
    return root


def _files_protected(found: containment.Layers) -> str | None:
    """None where the sandbox or the dropped user keeps the attacks on files off, else why not."""
    if found.bwrap:
        return None
    if found.user.uid is None:
        return "no sandbox and no user to drop to: the worker may touch every file the grader may"
    problem = unreachable([(REFERENCE, "r"), (HIDDEN_CHECKS, "r"), (HIDDEN_DATA, "r")], found.user.uid, found.user.gid)
    if problem is None:
        return "the grader's files are readable by the worker's user (setup.sh closes them on Gradescope)"
    return None


@dataclass
class BatchOutcome:
    level: str
    results: dict[str, dict]  # student -> results.json
    skipped_files: str | None  # why the attacks on files were left out, or None
    changed: list[str]  # files outside scratch that changed
    leftovers: list[str]
    accepted: int  # connections the listener got
    protections: list[str]


@pytest.fixture(scope="module")
def baseline():
    """The reference graded on its own: what each neighbour must get."""
    result = grade(ASSIGNMENT, REFERENCE, device="cpu", timeout_scale=TIMEOUT_SCALE)
    return {outcome.spec.name: outcome.score for outcome in result.outcomes}


_batches: dict[str, BatchOutcome] = {}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    def run(level: str) -> BatchOutcome:
        if level in _batches:
            return _batches[level]
        mp = pytest.MonkeyPatch()
        scratch_root = _scratch_root()
        try:
            for name, value in LEVELS[level].items():
                mp.setenv(name, value)
            mp.setenv("TMPDIR", str(scratch_root))  # read afresh by the batch's (spawned) processes
            containment.layers.cache_clear()
            found = containment.layers()
            outcome = _run_batch(level, found, tmp_path_factory.mktemp(f"adversarial-{level}"), scratch_root)
        finally:
            mp.undo()
            containment.layers.cache_clear()
            shutil.rmtree(scratch_root, ignore_errors=True)
        _batches[level] = outcome
        return outcome
    return run


def _run_batch(level: str, found: containment.Layers, folder: Path, scratch_root: Path) -> BatchOutcome:
    class_root, out_dir = folder / "class", folder / "out"
    skipped_files = _files_protected(found)
    listener = Listener()
    forged = json.dumps({"score": 999, "tests": [], "output": "FORGED"})
    constants = (f"PORT = {listener.port}\nOUT_DIR = {str(out_dir)!r}\nCLASS_ROOT = {str(class_root)!r}\n"
                 f"FORGED = {forged!r}")
    for name, attack in ATTACKS.items():
        if attack.on_files and skipped_files:
            continue
        (class_root / name).mkdir(parents=True)
        (class_root / name / "attention.py").write_text(_attacker_source(attack, constants))
    for name in NEIGHBOURS:
        (class_root / name).mkdir(parents=True)
        (class_root / name / "attention.py").write_text(REFERENCE.read_text())
    watched = (class_root, REPO / "solutions", REPO / "assignments", REPO / "autograder")
    before = _snapshot(*watched)
    grade_all(class_root, out_dir, workers=2, names=[ASSIGNMENT], device="cpu", timeout_scale=TIMEOUT_SCALE)
    after = _snapshot(*watched)
    changed = sorted(path for path in set(before) | set(after) if before.get(path) != after.get(path))
    expected_outputs = {"results.json", "report.html", "student_report.html", "index.html", "grades.csv"}
    changed += sorted(str(path) for path in out_dir.rglob("*") if path.is_file() and path.name not in expected_outputs)
    results = {path.parent.parent.name: json.loads(path.read_text()) for path in out_dir.glob("*/attention/results.json")}
    listener.server.close()
    any_result = next(iter(results.values()))
    return BatchOutcome(level, results, skipped_files, changed, _leftovers(scratch_root), listener.accepted,
                        any_result["extra_data"]["protections"])


def _check_named(document: dict, check: str) -> dict:
    matches = [test for test in document["tests"] if test["name"].startswith(f"{check}:")]
    assert matches, f"no test named {check} in {[t['name'] for t in document['tests']]}"
    return matches[0]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("attack_name", ATTACKS)
def test_an_attack_costs_only_the_attacked_checks(attack_name, level, batch, baseline):
    attack = ATTACKS[attack_name]
    outcome = batch(level)
    if attack.on_files and outcome.skipped_files:
        pytest.skip(f"{level}: {outcome.skipped_files}")
    document = outcome.results[attack_name]
    text = json.dumps(document)
    for marker in (HIDDEN_MARKER, DATA_MARKER, _solution_marker(), "FORGED"):
        assert marker not in text, f"{marker!r} reached the student's results"
    if attack.where == "import":
        attacked = set(baseline)  # a submission that cannot be imported scores nothing, static checks included
        message = IMPORT_MESSAGES[attack_name]
    else:
        attacked = {ATTACKED_CHECK}
        message = FUNCTION_MESSAGES[attack_name]
        if attack_name == "fork-bomb" and not any("no process-count limit" in line for line in outcome.protections):
            message = "more processes or threads than the grader allows"
    for check, score in baseline.items():
        test = _check_named(document, check)
        if check in attacked:
            assert test["score"] == 0, f"{check} scored {test['score']} under attack {attack_name}"
        else:
            assert test["score"] == score, f"{check}: {test['score']} != {score} (not attacked)"
    attacked_outputs = " ".join(_check_named(document, check)["output"] for check in attacked) + document["output"]
    assert message in attacked_outputs, f"{message!r} not in: {attacked_outputs[:2000]}"
    for neighbour in NEIGHBOURS:
        scores = {check: _check_named(outcome.results[neighbour], check)["score"] for check in baseline}
        assert scores == baseline, f"{neighbour} graded differently beside {attack_name}"
    assert not outcome.changed, f"files outside scratch changed: {outcome.changed}"
    assert not outcome.leftovers, f"processes left behind: {outcome.leftovers}"
    assert outcome.accepted == 0, "a worker reached a server on the grader's loopback"


def test_the_read_attack_saw_only_missing_files(batch):
    outcome = batch("best")
    if outcome.skipped_files:
        pytest.skip(outcome.skipped_files)
    said = outcome.results["read-grader-files"]["output"] + json.dumps(outcome.results["read-grader-files"]["tests"])
    for path in (REFERENCE, HIDDEN_CHECKS, HIDDEN_DATA):
        assert f"could not read {path}" in said
    assert "READ " in said  # its own job file, which holds the probe code only
    assert "def verdict" not in said and "def inputs" not in said


def _solution_marker() -> str:
    """A line of the reference's implementation that the skeleton does not have."""
    skeleton = set(SKELETON.read_text().splitlines())
    return max((line.strip() for line in REFERENCE.read_text().splitlines() if line not in skeleton
                and "=" in line), key=len)


def test_leftovers_are_only_this_tests_own_processes():
    """What another grade-all on the machine runs (a worker's or a warden's command line, another
    run's attack) is never this test's leftover; a process naming this test's scratch root or
    one of its own sleeps is."""
    scratch_root = _scratch_root()
    nap = "import time; time.sleep(60)"
    elsewhere = "/tmp/autograder-someone-else"
    strangers = [  # the shapes of another batch's processes, which the old check counted
        [sys.executable, "-s", "-c", f"{nap}; import autograder.sandbox.worker as w", f"{elsewhere}/job-0.bin", "5"],
        [sys.executable, "-I", "-S", "-c", nap, str(containment.WARDEN), json.dumps({"cwd": f"{elsewhere}/work"})],
        ["sleep", "120.777"],
    ]
    own = [[sys.executable, "-s", "-c", nap, str(scratch_root / "autograder-x" / "job-0.bin"), "5"],
           ["sleep", SLEEPS["fork-bomb"]]]
    started = []
    try:
        for argv in strangers + own:  # Popen returns once the program runs: its command line is set
            started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        found = _leftovers(scratch_root)
        assert sorted(found) == sorted(" ".join(argv) for argv in own)
    finally:
        for process in started:
            process.kill()
            process.wait()
        shutil.rmtree(scratch_root, ignore_errors=True)
