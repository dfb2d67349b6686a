"""`nbops run` and `nbops sweep`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nbops.cli import options

if TYPE_CHECKING:
    from nbops.core.config import Settings
    from nbops.run.progress import Progress

PARAMS_EPILOG = """\
parameters: -p values are typed like the defaults in the notebook's cell tagged `parameters`.
A parameter limited to some values declares them in its comment there:
  model = "forest"  # choices: forest, svm
  depth = 3  # choices: 3, 5, 8
Any other value (-p, -f or a sweep's) is refused before a kernel starts (exit 2)."""


def _changed(settings: Settings, args: argparse.Namespace) -> list[str | Path]:
    """--changed: the notebooks `nbops plan --base REF` lists; the cached ones said on stderr."""
    from nbops.ci.plan import changed_notebooks

    notebooks, plan = changed_notebooks(settings, list(args.notebooks), args.base, args.head,
                                        use_cache=not args.no_cache)
    for entry, run_id in plan.cached:
        print(f"cached {entry.notebook}: run {run_id[:8]} has this fingerprint", file=sys.stderr)
    return list(notebooks)


def _progress(args: argparse.Namespace) -> Progress:
    """The live table, or plain lines when cell output streams to stderr too (they do not mix)."""
    from nbops.run.progress import PlainProgress, make_progress

    if args.log_output and not args.quiet:
        return PlainProgress(sys.stderr)
    return make_progress(quiet=args.quiet)


def cmd_run(args: argparse.Namespace) -> int:
    from nbops.lifecycle.registration import Registrar
    from nbops.run.runner import plan_runs, run_specs
    from nbops.run.spool import pending_line
    from nbops.run.summary import exit_code, print_summary

    settings = options.settings(runs_dir=args.output_dir, tracking_uri=args.tracking_uri,
                                experiment=args.experiment, kernel_name=args.kernel,
                                html_hide_input=args.hide_input or None)
    if args.with_needs and args.changed:
        from nbops.core.errors import InputError

        raise InputError("--with-needs and --changed: --changed reads the notebooks it does not run from their "
                         "cached runs, --with-needs runs them", hint="give one of the two")
    notebooks = _changed(settings, args) if args.changed else list(args.notebooks)
    if args.changed and not notebooks:
        print("nothing to run: every affected notebook is cached")
        return 0
    specs = plan_runs(settings, notebooks, options.overrides(args), args.timeout, args.cell_timeout,
                      log_output=args.log_output)
    from nbops.run.pipeline_run import plan_pipeline, run_pipeline

    pipeline = plan_pipeline(settings, specs)  # notebooks that need others: checked and ordered
    if args.with_needs and pipeline is not None and pipeline.external:
        needed = plan_runs(settings, [s.notebook.path for s in pipeline.external.values()], {}, args.timeout,
                           args.cell_timeout, log_output=args.log_output)
        pipeline = plan_pipeline(settings, [*needed, *specs])
    if pipeline is not None:
        specs = pipeline.specs
    options.print_notes(specs)
    if args.prepare_only:  # papermill's prepare_only: parameterised, not run, no MLflow run
        from nbops.core.context import relative_to_repo
        from nbops.run.engine import prepare

        for spec in specs:
            print(f"prepared {relative_to_repo(prepare(spec), settings.root)} (not executed)")
        return 0
    executor, jobs = options.executor(args, specs)
    pending = "" if args.no_track else pending_line(settings.root)
    if pending:
        print(pending, file=sys.stderr)
    progress = _progress(args)
    parent = None
    try:
        if pipeline is not None:
            result = run_pipeline(settings, pipeline, track=not args.no_track, debug=args.debug, jobs=jobs,
                                  progress=progress, executor=executor, registrar=Registrar(),
                                  experiment=args.experiment)
            outcomes, parent = result.outcomes, result.parent_run_id
        else:
            outcomes = run_specs(settings, specs, track=not args.no_track, debug=args.debug, jobs=jobs,
                                 progress=progress, executor=executor, registrar=Registrar())
    finally:
        progress.close()
    print_summary(outcomes, settings)
    if pipeline is not None and parent:
        print(f"pipeline run {parent[:8]} ({pipeline.name}): {len(outcomes)} notebook(s) as its child runs")
    return exit_code(outcomes)


def cmd_sweep(args: argparse.Namespace) -> int:
    from nbops.lifecycle.registration import Registrar
    from nbops.notebook.document import load
    from nbops.notebook.params import load_params_file
    from nbops.run.progress import make_progress
    from nbops.run.runner import plan_runs
    from nbops.run.summary import exit_code, print_sweep
    from nbops.run.sweep import parse_grid, run_sweep

    settings = options.settings(kernel_name=args.kernel)
    notebook = load(args.notebook)
    from_file = load_params_file(args.grid_file) if args.grid_file else {}
    grid = parse_grid(notebook, args.param, from_file)
    specs = plan_runs(settings, [args.notebook], {})  # data files and kernel checked first
    options.print_notes(specs)
    executor, jobs = options.executor(args, specs)
    if args.executor == "ray":
        jobs = 10_000  # Ray schedules every point itself
    progress = make_progress(quiet=args.quiet)
    try:
        result = run_sweep(settings, args.notebook, grid, args.random, args.seed, jobs,
                           registrar=None if args.no_register else Registrar(),
                           track=not args.no_track, debug=args.debug, progress=progress,
                           executor=executor)
    finally:
        progress.close()
    print_sweep(result, settings)
    return exit_code(result.outcomes)  # as `nbops run`: 4 when a point is only in the spool


def cmd_runs(args: argparse.Namespace) -> int:
    from nbops.run.kernel_procs import sweep
    from nbops.run.tracking import Tracker

    killed, removed = sweep()  # what killed nbops processes left on this machine, store or not
    if killed or removed:
        print(f"{killed} leftover kernel process(es) killed, {removed} kernel socket folder(s) removed")
    reaped = Tracker(options.settings(tracking_uri=args.tracking_uri)).reap()
    for o in reaped:
        print(f"ended {o.run_id[:8]} {o.notebook or '-'} as KILLED: {o.why}")
    print(f"{len(reaped)} orphaned run(s) ended")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="execute notebooks and track them in MLflow", epilog=PARAMS_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    run.add_argument("--changed", action="store_true",
                     help="run what `nbops plan --base REF` lists (changed and not cached)")
    run.add_argument("--base", metavar="REF", help="with --changed: the ref to compare with")
    run.add_argument("--head", metavar="REF", help="with --changed: default the working tree")
    run.add_argument("--no-cache", action="store_true", help="with --changed: ignore cached results")
    run.add_argument("--with-needs", action="store_true",
                     help="run the notebooks the given ones need too, transitively (metadata.nbops.needs), "
                          "with their defaults: -p/-f set the given notebooks only")
    options.add_param_flags(run, "override a parameter (repeatable)")
    run.add_argument("--output-dir", metavar="DIR", help="where executed notebooks go (default runs/)")
    run.add_argument("--timeout", type=options.seconds, metavar="S", help="limit for a whole notebook, seconds")
    run.add_argument("--cell-timeout", type=options.seconds, metavar="S", help="limit for one cell, seconds")
    options.add_jobs_flag(run, "notebooks at once, each in a fresh kernel (default: the number of cores)")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    options.add_kernel_flag(run)
    run.add_argument("--log-output", action="store_true",
                     help="stream each cell's stdout/stderr to stderr (prefixed by notebook when several run)")
    run.add_argument("--hide-input", action="store_true",
                     help="the run's HTML page (notebook/<name>.html) shows outputs only "
                          "([tool.nbops] html_hide_input)")
    run.add_argument("--prepare-only", action="store_true",
                     help="write the parameterised notebook to the output dir without running it or tracking")
    options.add_quiet_flag(run, "no progress, only the summary")
    options.add_executor_flags(run)
    run.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    run.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: one per notebook)")
    run.set_defaults(func=cmd_run)

    swp = sub.add_parser("sweep", help="run one notebook over a grid of parameter values", epilog=PARAMS_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    swp.add_argument("notebook", metavar="NOTEBOOK")
    swp.add_argument("-p", "--param", action="append", default=[], metavar="NAME=V1,V2,...",
                     help="values to sweep for a parameter (repeatable; the grid is their product)")
    swp.add_argument("-f", "--grid-file", metavar="FILE", help="YAML: NAME: [V1, V2, ...]")
    swp.add_argument("--random", type=options.positive_int, metavar="K", help="K random points of the grid")
    swp.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    options.add_jobs_flag(swp)
    swp.add_argument("--no-register", action="store_true", help="do not register the best model")
    swp.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    options.add_kernel_flag(swp)
    options.add_quiet_flag(swp, "no progress, only the summary")
    options.add_executor_flags(swp)
    swp.set_defaults(func=cmd_sweep)

    runs = sub.add_parser("runs", help="housekeeping of the MLflow runs nbops started")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    gc = rsub.add_parser("gc", help="end as KILLED the runs whose nbops process died (kill -9, lost machine); "
                        "kill the processes their kernels left here, remove their socket folders")
    gc.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default: the project's)")
    runs.set_defaults(func=cmd_runs)
