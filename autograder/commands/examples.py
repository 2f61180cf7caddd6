"""Example classes made from what ships in the repository, laid out as grade-all reads them
(``<root>/<student>/<assignment>.py``): for ``nox -s grade`` and the batch benchmark.

    python -m autograder.commands.examples class DEST        # reference, skeleton, bugs-1 ... bugs-8
    python -m autograder.commands.examples copies DEST 8     # student-01 ... student-08, each the reference
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from autograder.commands.variants import known_bugs
from autograder.spec import ASSIGNMENTS_DIR, REPO_ROOT, SOLUTIONS_DIR, load_spec

TEMPLATE_DIR = REPO_ROOT / "student_template"


def assignment_names() -> list[str]:
    return sorted(p.parent.name for p in ASSIGNMENTS_DIR.glob("*/assignment.toml"))


def example_class(dest: Path, names: list[str] | None = None) -> Path:
    """A class whose grades are known in advance: ``reference`` hands in every reference
    solution, ``skeleton`` every untouched skeleton, and ``bugs-k`` the k-th known bug (its
    patch applied to the reference) of each assignment (so every bug is graded once, and the later bug students miss some
    assignments, as real students do)."""
    names = names or assignment_names()
    _fresh(dest)
    for name in names:
        _put(dest / "reference" / f"{name}.py", SOLUTIONS_DIR / f"{name}.py")
        skeleton = TEMPLATE_DIR / name / f"{name}.py"
        if skeleton.is_file():
            _put(dest / "skeleton" / f"{name}.py", skeleton)
        spec = load_spec(name)
        for number, bug in enumerate(known_bugs(spec), start=1):
            target = dest / f"bugs-{number}" / f"{name}.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(bug.text(spec), encoding="utf-8")
    return dest


def reference_copies(dest: Path, copies: int, names: list[str] | None = None) -> Path:
    """``copies`` students who each hand in the reference of every assignment in ``names``."""
    _fresh(dest)
    for number in range(1, copies + 1):
        for name in names or assignment_names():
            _put(dest / f"student-{number:02d}" / f"{name}.py", SOLUTIONS_DIR / f"{name}.py")
    return dest


def _fresh(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)


def _put(target: Path, source: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "class":
        print(example_class(Path(argv[1]), argv[2:] or None))
        return 0
    if len(argv) >= 3 and argv[0] == "copies":
        print(reference_copies(Path(argv[1]), int(argv[2]), argv[3:] or None))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
