"""``autograder new NAME``: the scaffold of a new assignment, sound as it stands.

Writes ``assignments/NAME/`` (spec, handout, a visible and a hidden example check, one known
bug as a patch), ``solutions/NAME.py`` with its solution region marked, and the student folder
``student_template/NAME/``. The example is a numerically stable softmax, small enough to read
in a minute and to replace: ``autograder validate NAME`` passes on it unchanged, and keeps
passing as the instructor swaps in their own functions, checks and bugs one at a time. The
files come from ``autograder/commands/scaffold/*.j2``.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import jinja2

from autograder.commands.variants import make_patch
from autograder.spec import ASSIGNMENTS_DIR, SOLUTIONS_DIR, SpecError

SCAFFOLD = Path(__file__).resolve().parent / "scaffold"
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# The example's known bug: the softmax without the maximum subtracted.
BUG_EDIT = ("    shifted = x - x.amax(dim=dim, keepdim=True)\n    exps = shifted.exp()\n",
            "    exps = x.exp()  # BUG: overflows to inf for large x\n")
BUG_HEADER = ["Known bug: the maximum is not subtracted before exp, so large inputs overflow to inf / inf = NaN",
              "Caught by: large_inputs"]


def scaffold(name: str, title: str | None = None, assignments: Path = ASSIGNMENTS_DIR,
             solutions: Path = SOLUTIONS_DIR) -> list[Path]:
    """Write the new assignment's files; returns them. Refuses to overwrite anything."""
    if not NAME.match(name):
        raise SpecError(f"{name!r} is not a usable assignment name. Fix: lower-case letters, digits and "
                        "underscores, starting with a letter (it becomes the module students hand in).")
    folder, solution = assignments / name, solutions / f"{name}.py"
    for existing in (folder, solution):
        if existing.exists():
            raise SpecError(f"{existing} already exists. Fix: choose another name, or remove it first.")
    values = {"name": name, "title": title or name.replace("_", " ").capitalize(),
              "seed": zlib.crc32(name.encode()) % 9000 + 1000}
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(SCAFFOLD), keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined, autoescape=False)
    files = {folder / "assignment.toml": "assignment.toml.j2", folder / "handout.md": "handout.md.j2",
             folder / "checks.py": "checks.py.j2", folder / "hidden_checks.py": "hidden_checks.py.j2",
             solution: "solution.py.j2"}
    texts = {path: environment.get_template(template).render(values) for path, template in files.items()}
    buggy = texts[solution].replace(*BUG_EDIT)
    texts[folder / "bugs" / "naive_softmax.patch"] = make_patch(texts[solution], buggy, f"solutions/{name}.py",
                                                                BUG_HEADER)
    for path, text in texts.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(texts)
