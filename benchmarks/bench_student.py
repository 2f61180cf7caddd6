"""The student side, timed: public tests run locally, grading a .py vs the same code as a
notebook, and executing that notebook top to bottom with `jupyter nbconvert --execute` (the
way Otter-Grader and nbgrader run notebooks). Median of N runs, each a fresh process.

    nox -s bench                # or: python benchmarks/bench_student.py --runs 5

Two notebooks: "reference" is the solution as a notebook (definitions only, plus the try-it
cell); "student-shaped" adds what real notebooks hold: `!pip` and magics, a training cell
with a fixed amount of work, and a plot. The grader runs the definitions of both; nbconvert
runs every cell.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from medians import print_medians  # benchmarks/medians.py (scripts run from this folder)

from autograder.spec import load_spec
from autograder.students.public import notebook_text

ROOT = Path(__file__).resolve().parent.parent
TRAINING_CELL = ("%%time\nimport torch\nlosses = []\nweights = torch.randn(256, 256, requires_grad=True)\n"
                 "optimizer = torch.optim.SGD([weights], lr=1e-3)\nfor step in range({steps}):\n"
                 "    loss = (torch.randn(64, 256) @ weights).pow(2).mean()\n"
                 "    optimizer.zero_grad(); loss.backward(); optimizer.step(); losses.append(loss.item())")
PLOT_CELL = "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot(losses)\nplt.show()"


def timed(command: list[str], cwd: Path | None = None, expect_ok: bool = True) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if expect_ok and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return elapsed


def student_shaped(path: Path, reference_notebook: str, steps: int) -> None:
    notebook = nbformat.reads(reference_notebook, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell("!pip --version\n%config InlineBackend.figure_format = 'png'"))
    notebook.cells += [nbformat.v4.new_code_cell(TRAINING_CELL.format(steps=steps)),
                       nbformat.v4.new_code_cell(PLOT_CELL)]
    path.write_text(nbformat.writes(notebook))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000, help="training steps in the student-shaped notebook")
    args = parser.parse_args()
    spec = load_spec("attention")
    reference = ROOT / "solutions" / "attention.py"
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "student"
        shutil.copytree(ROOT / "student_template" / "attention", folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        shutil.copy(reference, folder / "attention.py")
        (folder / "attention.ipynb").unlink()
        as_notebook = tmp / "reference" / "attention.ipynb"
        as_notebook.parent.mkdir()
        as_notebook.write_text(notebook_text(spec, reference.read_text()))
        shaped = tmp / "shaped" / "attention.ipynb"
        shaped.parent.mkdir()
        student_shaped(shaped, as_notebook.read_text(), args.steps)
        grade = [sys.executable, "-m", "autograder", "grade", "attention"]
        nbconvert = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                     "--ExecutePreprocessor.timeout=600", "--output-dir", str(tmp / "executed")]
        commands = {
            "public tests (pytest in the student folder)": ([sys.executable, "-m", "pytest", "-q", "-p",
                                                             "no:cacheprovider"], folder),
            "grade attention.py": ([*grade, str(reference), "--out", str(tmp / "o1"), "--quiet"], None),
            "grade reference notebook": ([*grade, str(as_notebook), "--out", str(tmp / "o2"), "--quiet"], None),
            "nbconvert --execute reference notebook": ([*nbconvert, str(as_notebook)], None),
            "grade student-shaped notebook": ([*grade, str(shaped), "--out", str(tmp / "o3"), "--quiet"], None),
            "nbconvert --execute student-shaped notebook": ([*nbconvert, str(shaped)], None),
        }
        for _ in range(args.runs):  # interleaved, so a slow spell of the machine hits every row alike
            for label, (command, cwd) in commands.items():
                samples.setdefault(label, []).append(timed(command, cwd))

    base = statistics.median(samples["grade attention.py"])
    print_medians(f"student side of attention: median of {args.runs} runs, each a fresh process (CPU)", samples,
                  first="what", compare="vs grading the .py", compared=lambda _, median: f"{median / base:.2f}x",
                  digits=2)


if __name__ == "__main__":
    main()
