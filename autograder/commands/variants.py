"""Known bugs and calibration alternatives: variants of the reference, kept as patches.

A known bug is ``assignments/<name>/bugs/<bug>.patch``, a unified diff against the reference
under a short header::

    Known bug: the decoder never stops at <EOS>: it always decodes max_len words
    Caught by: greedy_stops_at_eos, trained_reversal

    --- a/solutions/<name>.py
    +++ b/solutions/<name>.py
    @@ -322,8 +322,6 @@
    ...

A calibration alternative is ``assignments/<name>/calibration/<alternative>.patch`` with the
header ``Alternative: <what differs>``, or, for a whole other design, a ``.py`` file whose
first line is ``# alternative: <what differs>``. A patch is applied to the reference as it is
now: each hunk's lines must be found unchanged (at the line it names or shifted), so an edit of
the reference elsewhere never breaks it, and an edit of the lines a bug touches stops with the
file and hunk. ``autograder bug`` writes a patch from an edited copy of the reference.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import whatthepatch

from autograder.spec import AssignmentSpec, SpecError


class PatchError(SpecError):
    """A variant that cannot be built: a malformed header, or a hunk the reference no longer has."""


@dataclass(frozen=True)
class Variant:
    """One known bug or calibration alternative of an assignment's reference."""

    name: str  # the file's stem: ``greedy_never_stops``
    role: str  # "bug" or "alternative"
    path: Path
    description: str
    caught_by: tuple[str, ...] = ()  # bugs only: the checks that must lose their points

    def text(self, spec: AssignmentSpec) -> str:
        """The variant's source: the reference with the patch applied (or the alternative's file)."""
        if self.path.suffix == ".py":
            return self.path.read_text(encoding="utf-8")
        reference = spec.reference_path.read_text(encoding="utf-8")
        return apply_patch(self.path.read_text(encoding="utf-8"), reference, self.path)


def known_bugs(spec: AssignmentSpec) -> list[Variant]:
    return [_read(path, "bug") for path in sorted((spec.folder / "bugs").glob("*.patch"))]


def alternatives(spec: AssignmentSpec) -> list[Variant]:
    folder = spec.folder / "calibration"
    paths = sorted([*folder.glob("*.patch"), *folder.glob("*.py")], key=lambda path: path.stem)
    return [_read(path, "alternative") for path in paths]


def _read(path: Path, role: str) -> Variant:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        first = text.splitlines()[0] if text else ""
        return Variant(path.stem, role, path, first.removeprefix("# alternative:").strip())
    fields = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("--- "):
            break
        if line.strip():
            key, colon, value = line.partition(":")
            if not colon:
                raise PatchError(f"{path}:{number}: header line {line!r} is not `Key: value`. Fix: the "
                                 "header is `Known bug: ...` and `Caught by: a, b` (or `Alternative: ...`), "
                                 "then a blank line, then the diff.")
            fields[key.strip().lower()] = value.strip()
    wanted = "known bug" if role == "bug" else "alternative"
    if wanted not in fields:
        raise PatchError(f"{path}:1: the header has no `{wanted.capitalize()}: ...` line saying what the "
                         f"{role} is. Fix: start the file with it.")
    caught = tuple(name.strip() for name in fields.get("caught by", "").split(",") if name.strip())
    if role == "bug" and not caught:
        raise PatchError(f"{path}:2: the header has no `Caught by: check_a, check_b` line naming the "
                         "checks that must lose their points. Fix: add it under `Known bug:`.")
    return Variant(path.stem, role, path, fields[wanted], caught)


def apply_patch(patch: str, reference: str, where: Path) -> str:
    """``reference`` with every hunk of ``patch`` applied. A hunk's old lines (context and
    removals) must appear unchanged; the nearest place to the line it names is taken."""
    diffs = [diff for diff in whatthepatch.parse_patch(patch) if diff.changes]
    if len(diffs) != 1:
        raise PatchError(f"{where}: expected a diff of one file (the reference), found {len(diffs)}. "
                         "Fix: write it with `autograder bug`, or `diff -u` against the reference.")
    lines = reference.splitlines(keepends=True)
    hunks: dict[int, list] = {}
    for change in diffs[0].changes:
        hunks.setdefault(change.hunk, []).append(change)
    shift, floor = 0, 0  # lines added so far; no hunk may start before the previous one ends
    for number, changes in sorted(hunks.items()):
        old = [c.line for c in changes if c.old is not None]
        new = [c.line + "\n" for c in changes if c.new is not None]
        named = next((c.old for c in changes if c.old is not None), 1) - 1 + shift
        start = _find(lines, old, named, floor)
        if start is None:
            first = next((c for c in changes if c.old is not None and c.new is None), changes[0])
            raise PatchError(f"{where}: hunk {number} (near line {named + 1 - shift} of the reference, at "
                             f"{first.line.strip()!r}) no longer applies: the reference has changed there. "
                             "Fix: edit the reference's new text the way the bug did, then rewrite the patch "
                             "with `autograder bug`.")
        lines[start:start + len(old)] = new
        shift += len(new) - len(old)
        floor = start + len(new)
    return "".join(lines)


def _find(lines: list[str], old: list[str], named: int, floor: int) -> int | None:
    """Where ``old`` occurs in ``lines`` at or after ``floor``, nearest to ``named``."""
    plain = [line.rstrip("\r\n") for line in lines]
    places = range(floor, len(lines) - len(old) + 1)
    for start in sorted(places, key=lambda place: (abs(place - named), place)):
        if plain[start:start + len(old)] == old:
            return start
    return None


def write_bug(spec: AssignmentSpec, name: str, edited: Path, what: str, caught_by: list[str]) -> Path:
    """``bugs/<name>.patch`` from ``edited`` (a copy of the reference with the bug put in)."""
    if not what.strip() or not caught_by:
        raise PatchError("a known bug needs --what (one sentence: what is wrong) and --caught-by (the checks "
                         "that must lose their points)")
    unknown = sorted(set(caught_by) - {check.name for check in spec.checks})
    if unknown:
        raise PatchError(f"{spec.toml_path} has no checks {unknown}. Fix: --caught-by takes names of its "
                         f"[[checks]]: {', '.join(check.name for check in spec.checks)}")
    reference = spec.reference_path.read_text(encoding="utf-8")
    text = edited.read_text(encoding="utf-8")
    if text == reference:
        raise PatchError(f"{edited} is the reference unchanged. Fix: put the bug in, then run this again.")
    path = spec.folder / "bugs" / f"{name}.patch"
    path.parent.mkdir(exist_ok=True)
    path.write_text(make_patch(reference, text, f"solutions/{spec.name}.py",
                               [f"Known bug: {what.strip()}", f"Caught by: {', '.join(caught_by)}"]), encoding="utf-8")
    return path


def make_patch(reference: str, edited: str, reference_name: str, header: list[str]) -> str:
    """The patch file for ``edited``: ``header`` lines, a blank line, the unified diff."""
    diff = difflib.unified_diff(reference.splitlines(keepends=True), edited.splitlines(keepends=True),
                                f"a/{reference_name}", f"b/{reference_name}")
    return "\n".join(header) + "\n\n" + "".join(diff)
