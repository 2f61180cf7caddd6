"""Gradescope: the upload zip for one assignment, and what runs inside Gradescope's container.

``autograder gradescope NAME --out DIR`` calls :func:`build`, which writes

- ``DIR/NAME-gradescope.zip``, the file to upload. Gradescope unpacks it into
  ``/autograder/source``, so the zip mirrors the repository (``autograder/``,
  ``assignments/NAME/``, ``solutions/NAME.py``) and spec.py finds everything as it does here;
  beside them, at the zip root: ``setup.sh`` (run once, as root, when Gradescope builds the
  image), ``run_autograder`` (run for every submission) and ``requirements.txt``.
- ``DIR/NAME-docker/``: a Dockerfile on Gradescope's base image, a README with the
  ``docker build`` / ``docker run`` lines, and ``source/`` (the zip's files), for grading in the
  same kind of container on your own machine.

Inside the container ``run_autograder`` calls ``python -m autograder.outputs.gradescope run``
(:func:`run`): it grades ``/autograder/submission`` (a folder, as a folder submission) and
writes ``/autograder/results/results.json`` (plus ``report.html`` and ``student_report.html``
for the instructor). When the grader itself fails, the student still gets a results.json
saying so, scored 0 until a regrade, and the exit status is 1 (see :func:`write_failure`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import traceback
import zipfile
from importlib import metadata
from pathlib import Path

from autograder.pipeline import GraderError
from autograder.spec import AssignmentSpec, SpecError, load_spec, student_requirements

PACKAGE_DIR = Path(__file__).resolve().parents[1]
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BASE_IMAGE = "gradescope/autograder-base"  # Gradescope's documented base image
BASE_TAG = "ubuntu-22.04"  # its default Ubuntu today
VENV = "/opt/autograder/venv"  # where setup.sh installs the grader's Python packages
WORKER_USER = "autograder-student"  # created by setup.sh; the worker drops to it
GRADER_PACKAGES = ("torch", "numpy", "matplotlib", "jinja2", "rich", "jsonschema", "psutil", "nbformat")
SKIPPED = {"__pycache__", "bugs", "calibration"}  # never shipped (known bugs, calibration runs)
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # zip entries get one date: the same inputs give the same zip


def build(assignment: str, out_dir: Path) -> Path:
    """Write the Gradescope zip of ``assignment`` (and the Docker folder beside it) into
    ``out_dir``; returns the zip's path."""
    try:
        spec = load_spec(assignment)
    except SpecError as error:
        raise GraderError(str(error)) from None
    if not spec.reference_path.is_file():
        raise GraderError(f"reference solution missing: {spec.reference_path} (the grader runs it to "
                          "compute expected values, so the zip must hold it)")
    files = zip_files(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{spec.name}-gradescope.zip"
    _write_zip(target, files)
    _write_docker_folder(out_dir / f"{spec.name}-docker", spec, files)
    return target


def zip_files(spec: AssignmentSpec) -> dict[str, tuple[bytes, int]]:
    """Path in the zip -> (content, mode): the scripts, the grader package, the assignment
    folder (without bugs/, calibration/, caches) and the reference solution."""
    files = {
        "setup.sh": (render("setup.sh").encode(), 0o755),
        "run_autograder": (render("run_autograder", assignment=spec.name).encode(), 0o755),
        "requirements.txt": (requirements(spec).encode(), 0o644),
    }
    trees = [(PACKAGE_DIR, "autograder"), (spec.folder, f"assignments/{spec.name}")]
    for folder, prefix in trees:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not SKIPPED & set(relative.parts) and path.suffix != ".pyc":
                files[f"{prefix}/{relative.as_posix()}"] = (path.read_bytes(), 0o644)
    files[f"solutions/{spec.reference_path.name}"] = (spec.reference_path.read_bytes(), 0o644)
    return files


def requirements(spec: AssignmentSpec) -> str:
    """requirements.txt pinned to this environment: the grader's packages, torch as the CPU
    build, and every library of the assignment's allowed imports (pinned where installed here,
    else with its range from student_libraries.txt: the image must offer what the handout lists)."""
    lines = [f"# Pinned to the environment that built this zip (Python {platform.python_version()}).",
             "# torch comes from PyTorch's CPU index (no CUDA libraries); setup.sh installs it first.",
             f"--extra-index-url {TORCH_CPU_INDEX}"]
    pinned = {name: f"{name}=={_installed_version(name)}" for name in GRADER_PACKAGES}
    owners, offered = metadata.packages_distributions(), student_requirements()
    for module in spec.allowed_imports:  # what students may import (torch, numpy, seaborn, ...)
        if module in sys.stdlib_module_names or module in pinned:
            continue
        for dist in owners.get(module, []):
            pinned.setdefault(dist, f"{dist}=={_installed_version(dist)}")
        if module not in owners:  # not installed where the zip is built: required all the same
            pinned[module] = offered.get(module, module)
    return "\n".join(lines + list(pinned.values())) + "\n"


def _installed_version(name: str) -> str:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        raise GraderError(f"cannot pin {name}: it is not installed in this environment") from None
    return version.split("+", 1)[0]  # 2.13.0+cpu or +cu126 -> 2.13.0, taken from the CPU index


def render(template: str, **values) -> str:
    """One of the ``templates/gradescope_*.j2`` files (plain text, LF line endings)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.PackageLoader("autograder.outputs", "templates"), autoescape=False,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    settings = {"venv": VENV, "worker_user": WORKER_USER, "torch_index": TORCH_CPU_INDEX,
                "base_image": BASE_IMAGE, "base_tag": BASE_TAG}
    return environment.get_template(f"gradescope_{template}.j2").render(**settings, **values)


def _write_zip(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Write the zip beside its target, then rename: a reader never sees half a zip."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    try:
        with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, (content, mode) in files.items():
                entry = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
                entry.external_attr = (0o100000 | mode) << 16  # a regular file and its permissions
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_docker_folder(folder: Path, spec: AssignmentSpec, files: dict[str, tuple[bytes, int]]) -> None:
    shutil.rmtree(folder / "source", ignore_errors=True)  # no file left over from an older build
    for name, (content, mode) in files.items():
        path = folder / "source" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    for name, template in (("Dockerfile", "Dockerfile"), ("README.md", "docker_README.md")):
        (folder / name).write_bytes(render(template, assignment=spec.name).encode())


# --- inside the container --------------------------------------------------------------------

def run(root: Path, assignment: str) -> int:
    """Grade ``root/submission`` into ``root/results``; 0 when grading completed, 1 when the
    grader failed (a results.json saying so is written all the same)."""
    from rich.console import Console

    from autograder.outputs.report import print_summary, write_reports
    from autograder.pipeline import grade

    results = root / "results"
    try:
        spec = load_spec(assignment)
        result = grade(spec, submission_folder(root / "submission", spec))
    except (GraderError, SpecError) as error:
        write_failure(results, assignment, str(error))
        return 1
    except Exception as error:  # a bug in the grader: the traceback goes to the instructor's log
        traceback.print_exc()
        write_failure(results, assignment, f"{type(error).__name__}: {error}")
        return 1
    result.facts["grader_path"] = str(PACKAGE_DIR)  # which copy of the grader ran
    write_reports(result, results)
    print_summary(result, Console(width=120))  # to stdout: Gradescope shows it to instructors only
    return 0


def submission_folder(folder: Path, spec: AssignmentSpec) -> Path:
    """The folder to grade: ``folder`` itself, or the one folder below it that holds
    ``<stem>.py``/``.ipynb`` when the student uploaded a zip of a folder."""
    wanted = {f"{spec.submission_stem}.py", f"{spec.submission_stem}.ipynb"}
    if not folder.is_dir() or any((folder / name).is_file() for name in wanted):
        return folder
    holders = sorted({path.parent for path in folder.rglob("*")
                      if path.name in wanted and "__MACOSX" not in path.parts})
    return holders[0] if len(holders) == 1 else folder


def write_failure(results: Path, assignment: str, message: str) -> None:
    """A results.json for a run the grader could not finish: Gradescope shows its message to
    the student instead of a bare "The autograder failed to execute correctly"; the score is
    0 until the instructor fixes the grader and regrades."""
    from autograder.outputs.report import write_atomic

    print(f"autograder: grading failed: {message}", file=sys.stderr)
    document = {
        "score": 0.0,
        "output": ("The autograder could not grade this submission because of a problem in the grader "
                   f"itself, not in your code ({message}). Your instructor has the details; the score "
                   "of 0 is a placeholder until the submission is regraded."),
        "output_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": [],
        "extra_data": {"assignment": assignment, "grader_error": message, "grader_path": str(PACKAGE_DIR)},
    }
    write_atomic(results / "results.json", json.dumps(document, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.outputs.gradescope",
                                     description="What run_autograder calls inside Gradescope's container.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="grade ROOT/submission into ROOT/results/results.json")
    run_cmd.add_argument("--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder")),
                         help="the /autograder tree (default: $AUTOGRADER_ROOT, else /autograder)")
    run_cmd.add_argument("--assignment", required=True)
    args = parser.parse_args(argv)
    return run(args.root, args.assignment)


if __name__ == "__main__":
    raise SystemExit(main())
