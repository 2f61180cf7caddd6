"""Command line: ``autograder grade|grade-all|validate|template|calibrate|gradescope|new|bug|doctor``
(``python -m autograder`` works the same)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from autograder.outputs.report import print_summary, write_reports
from autograder.pipeline import GraderError, grade
from autograder.spec import SpecError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    grade_cmd = commands.add_parser("grade", help="grade one submission (a .py or .ipynb file, or a folder)")
    grade_cmd.add_argument("assignment", help="assignment name (e.g. attention) or path to its folder")
    grade_cmd.add_argument("submission", type=Path)
    grade_cmd.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    grade_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    grade_cmd.add_argument("--seed", type=int, default=None, help="grading seed (default: the spec's)")
    grade_cmd.add_argument("--top-level", choices=("definitions", "all"), default=None,
                           help="what of the submission runs at import: its definitions (the spec's default) "
                                "or everything, within the import time cap")
    grade_cmd.add_argument("--quiet", action="store_true", help="no terminal summary")

    batch_cmd = commands.add_parser("grade-all", help="grade SUBMISSIONS_ROOT/<student>/<assignment>.py|.ipynb "
                                    "for every assignment found; writes a class summary and grades.csv")
    batch_cmd.add_argument("root", type=Path, metavar="SUBMISSIONS_ROOT")
    batch_cmd.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default: reports)")
    batch_cmd.add_argument("--workers", type=int, default=None,
                           help="submissions graded at once (default: one per core), each with one torch thread")
    batch_cmd.add_argument("--force", action="store_true",
                           help="regrade everything, even pairs whose submission and grader are unchanged")
    batch_cmd.add_argument("--assignments", nargs="+", default=None, metavar="NAME",
                           help="grade only these assignments (default: every assignment that has a spec)")
    batch_cmd.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    batch_cmd.add_argument("--executor", choices=("local", "dask"), default="local",
                           help="local: a process pool on this machine; dask: jobs go to a Dask cluster")
    batch_cmd.add_argument("--scheduler", default=None, metavar="ADDRESS",
                           help="the Dask scheduler, e.g. tcp://10.0.0.5:8786 (with --executor dask)")

    gradescope_cmd = commands.add_parser("gradescope", help="build the Gradescope autograder zip of an assignment")
    gradescope_cmd.add_argument("assignment")
    gradescope_cmd.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")

    template_cmd = commands.add_parser("template", help="regenerate student_template/ from solutions/")
    template_cmd.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    template_cmd.add_argument("--check", action="store_true", help="only report stale files; exit 1 if any")

    validate_cmd = commands.add_parser("validate", help="prove assignments sound: reference, skeleton, known bugs")
    validate_cmd.add_argument("assignments", nargs="*", help="assignment names (default: all)")
    validate_cmd.add_argument("--jobs", type=int, default=1,
                              help="assignments validated at once, each in its own process (default 1)")

    calibrate_cmd = commands.add_parser("calibrate", help="run a trained-behaviour check over several seeds on "
                                        "the reference, alternatives and known bugs")
    calibrate_cmd.add_argument("assignment")
    calibrate_cmd.add_argument("check", help="the check to calibrate (one with a `metrics` method)")
    calibrate_cmd.add_argument("--seeds", type=int, default=5, help="number of grading seeds (default 5)")
    calibrate_cmd.add_argument("--write", action="store_true",
                               help="record the table in assignments/<name>/calibration/<check>.md")

    new_cmd = commands.add_parser("new", help="scaffold a new assignment that validates as it stands "
                                  "(docs/authoring.md)")
    new_cmd.add_argument("name", help="the assignment's name, also the module students hand in")
    new_cmd.add_argument("--title", default=None)

    bug_cmd = commands.add_parser("bug", help="record a known bug: a patch of the reference, from an edited copy")
    bug_cmd.add_argument("assignment")
    bug_cmd.add_argument("name", help="the bug's name (bugs/<name>.patch)")
    bug_cmd.add_argument("edited", type=Path, help="a copy of the reference with the bug put in")
    bug_cmd.add_argument("--what", required=True, help="one sentence: what is wrong")
    bug_cmd.add_argument("--caught-by", required=True, help="the checks that must lose their points, comma-separated")

    doctor_cmd = commands.add_parser("doctor", help="which protections a worker gets on this machine, and how to "
                                     "get the missing ones")
    doctor_cmd.add_argument("--strict", action="store_true", help="exit 1 unless every protection is in force")

    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "grade":
            return _grade(args)
        if args.command == "grade-all":
            return _grade_all(args, console)
        if args.command == "gradescope":
            from autograder.outputs.gradescope import build
            console.print(f"wrote {build(args.assignment, args.out)}", soft_wrap=True)
            return 0
        if args.command == "validate":
            return _validate(args, console)
        if args.command == "calibrate":
            return _calibrate(args, argv, console)
        if args.command == "new":
            return _new(args, console)
        if args.command == "bug":
            from autograder.commands.variants import write_bug
            from autograder.spec import load_spec

            caught = [name.strip() for name in args.caught_by.split(",") if name.strip()]
            console.print(f"wrote {write_bug(load_spec(args.assignment), args.name, args.edited, args.what, caught)}; "
                          f"`autograder validate {args.assignment}` proves it is caught", soft_wrap=True)
            return 0
        if args.command == "template":
            from autograder.students.template import regenerate
            stale = regenerate(write=not args.check, names=args.assignments or None)
            for path in stale:
                console.print(f"{'stale' if args.check else 'wrote'}: {path}", soft_wrap=True)
            return 1 if args.check and stale else 0
    except (GraderError, SpecError) as error:
        console.print(f"[red]autograder: {error}[/]")
        return 2
    return 0


def _doctor(args) -> int:
    from rich.table import Table

    from autograder.sandbox.containment import doctor

    rows = doctor()
    table = Table(title="Protections for student code on this machine")
    for column in ("protection", "in force", "details"):
        table.add_column(column, overflow="fold")
    for layer, in_force, details in rows:
        table.add_row(layer, "[green]yes[/]" if in_force else "[red]no[/]", details)
    Console().print(table)
    return 1 if args.strict and not all(in_force for _, in_force, _ in rows) else 0


def _grade(args) -> int:
    result = grade(args.assignment, args.submission, device=args.device, seed=args.seed, top_level=args.top_level)
    paths = write_reports(result, args.out)
    if not args.quiet:
        print_summary(result, Console())
        print(f"wrote {paths['results']} and {paths['report']}", file=sys.stderr)
    return 0


def _grade_all(args, console: Console) -> int:
    from autograder.commands.batch import grade_all

    if (args.executor == "dask") != (args.scheduler is not None):
        raise GraderError("--scheduler ADDRESS goes with --executor dask (and only with it)")
    summary = grade_all(args.root, args.out, workers=args.workers, force=args.force, names=args.assignments,
                        device=args.device, scheduler=args.scheduler, console=console)
    return 0 if summary.completed else 1


def _calibrate(args, argv: list[str] | None, console: Console) -> int:
    from autograder.commands import calibrate

    spec, samples = calibrate.calibrate(args.assignment, args.check, args.seeds)
    command = "python -m autograder " + " ".join(argv if argv is not None else sys.argv[1:])
    text = calibrate.markdown(spec, args.check, samples, command)
    print(text)
    if args.write:
        console.print(f"wrote {calibrate.write(spec, args.check, text)}")
    return 1 if calibrate.problems(spec, args.check, samples) else 0


def _new(args, console: Console) -> int:
    from autograder.commands.new import scaffold
    from autograder.students.template import regenerate

    written = scaffold(args.name, args.title)
    regenerate(names=[args.name])
    for path in written:
        console.print(f"wrote {path}", soft_wrap=True)
    console.print(f"and student_template/{args.name}/. Next: `autograder validate {args.name}`, then make it "
                  "yours (docs/authoring.md).", soft_wrap=True)
    return 0


def _pool(jobs: int):
    """An executor with ``map``: a process pool for several jobs, else this process."""
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    return contextlib.nullcontext(SimpleNamespace(map=map))


def _validate(args, console: Console) -> int:
    from autograder.commands.validate import print_table, validate
    from autograder.spec import ASSIGNMENTS_DIR

    names = args.assignments or sorted(p.parent.name for p in ASSIGNMENTS_DIR.glob("*/assignment.toml"))
    failed = []
    with _pool(args.jobs) as pool:  # every grade has its own worker process and one torch thread
        for name, rows in zip(names, pool.map(validate, names), strict=True):
            print_table(name, rows, Console())
            failed += [f"{name}: {row.variant}" for row in rows if not row.ok]
    for failure in failed:
        console.print(f"[red]not sound: {failure}[/]")
    return 1 if failed else 0
