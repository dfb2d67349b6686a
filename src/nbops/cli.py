"""The `nbops` command: parse arguments, call one function, print. No logic lives here.

Exit codes: 0 ok, 1 a notebook failed, 2 bad input (NbopsError), 3 a bug (traceback in a log
file), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from . import __version__
from .errors import NbopsError


def _settings(**flags):
    from .config import load_settings

    return load_settings(flags=flags)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _executor(args, specs):
    """(executor, jobs): the local one with --jobs, or Ray, which schedules every spec itself."""
    from .executors import RayExecutor, local_execute

    if args.executor != "ray":
        return local_execute, args.jobs
    executor = RayExecutor(args.ray_address)
    executor.check(specs)
    return executor, max(1, len(specs))


def _add_executor_flags(parser) -> None:
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local kernels (default) or Ray tasks (pip install 'nbops[ray]')")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster to join (default: start a local one)")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _overrides(args) -> dict:
    from .params import load_params_file, parse_assignments

    values = load_params_file(args.params_file) if getattr(args, "params_file", None) else {}
    values.update(parse_assignments(args.param))
    return values


def cmd_run(args) -> int:
    from .report import print_summary
    from .runner import plan_runs, run_specs

    settings = _settings(runs_dir=args.output_dir, tracking_uri=args.tracking_uri,
                         experiment=args.experiment)
    notebooks = list(args.notebooks)
    if args.changed:
        from .affected import make_plan

        if notebooks:
            raise NbopsError("give notebooks or --changed, not both")
        plan = make_plan(settings, args.base, args.head, use_cache=not args.no_cache)
        for entry, run_id in plan.cached:
            print(f"cached {entry.notebook}: run {run_id[:8]} has this fingerprint", file=sys.stderr)
        if not plan.run:
            print("nothing to run: every affected notebook is cached")
            return 0
        notebooks = [settings.root / e.notebook for e in plan.run]
    specs = plan_runs(settings, notebooks, _overrides(args), args.timeout, args.cell_timeout)
    from .progress import make_progress

    executor, jobs = _executor(args, specs)
    progress = make_progress(quiet=args.quiet)
    try:
        outcomes = run_specs(settings, specs, track=not args.no_track, debug=args.debug, jobs=jobs,
                             progress=progress, executor=executor)
    finally:
        progress.close()
    print_summary(outcomes, settings)
    return 0 if all(o.ok for o in outcomes) else 1


def cmd_sweep(args) -> int:
    from .notebook import load
    from .params import load_params_file
    from .report import print_sweep
    from .runner import plan_runs
    from .sweep import parse_grid, run_sweep

    settings = _settings()
    notebook = load(args.notebook)
    from_file = load_params_file(args.grid_file) if args.grid_file else {}
    grid = parse_grid(notebook, args.param, from_file)
    specs = plan_runs(settings, [args.notebook], {})  # data files and kernel checked first
    from .progress import make_progress

    executor, jobs = _executor(args, specs)
    if args.executor == "ray":
        jobs = 10_000  # Ray schedules every point itself
    progress = make_progress(quiet=args.quiet)
    try:
        result = run_sweep(settings, args.notebook, grid, args.random, args.seed, jobs,
                           register=not args.no_register, track=not args.no_track, debug=args.debug,
                           progress=progress, executor=executor)
    finally:
        progress.close()
    print_sweep(result, settings)
    return 0 if all(o.ok for o in result.outcomes) else 1


def cmd_new(args) -> int:
    from .scaffold import new_notebook

    settings = _settings()
    dest = new_notebook(settings, args.template, args.name, _overrides(args), force=args.force)
    print(f"created {dest.relative_to(settings.root) if dest.is_relative_to(settings.root) else dest}")
    return 0


def cmd_templates(args) -> int:
    from .scaffold import list_templates

    settings = _settings()
    templates = list_templates(settings)
    if not templates:
        print(f"no templates in {settings.path(settings.templates_dir)}")
        return 0
    for tpl in templates:
        gpu = f"  [gpu: {tpl.resources.gpu}]" if tpl.resources.gpu else ""
        print(f"{tpl.stem}  ({tpl.path}){gpu}")
        for p in tpl.parameters:
            help_text = f"  # {p.help}" if p.help else ""
            print(f"    {p.describe()}{help_text}")
    return 0


def cmd_check(args) -> int:
    from .check import as_json, run_check

    settings = _settings()
    findings = run_check(settings.root, args.paths,
                         (settings.notebooks_dir, settings.templates_dir), fix=args.fix,
                         lint=not args.no_lint)
    if args.format == "json":
        print(as_json(findings))
    else:
        for finding in findings:
            print(finding)
        if findings:
            print(f"{len(findings)} problem(s) in {len({f.path for f in findings})} notebook(s)", file=sys.stderr)
    return 1 if findings else 0


def cmd_plan(args) -> int:
    from .affected import as_github_output, as_gitlab_child, as_matrix, make_plan

    settings = _settings()
    plan = make_plan(settings, args.base, args.head, all_=args.all, use_cache=not args.no_cache)
    for entry in plan.run:
        print(f"run {entry.notebook} on {entry.runs_on}: {entry.reason}", file=sys.stderr)
    for entry, run_id in plan.cached:
        print(f"cached {entry.notebook}: run {run_id[:8]} has this fingerprint", file=sys.stderr)
    if args.format == "github":
        sys.stdout.write(as_github_output(plan))
    elif args.format == "gitlab":
        sys.stdout.write(as_gitlab_child(plan))
    else:
        print(json.dumps(as_matrix(plan), indent=1))
    return 0


def cmd_review(args) -> int:
    from .review import write_review

    settings = _settings()
    results = None
    if args.run:
        from .results import run_and_compare

        def results(reviews):
            return run_and_compare(settings, reviews, args.base, args.head)

    md, reviews = write_review(settings.root, args.base, args.head, Path(args.out).resolve(), results)
    failed = [r for r in reviews if r.change.error]
    print(f"reviewed {len(reviews) - len(failed)} notebook(s) -> {md}")
    for r in failed:
        print(f"could not review {r.change.path}: {r.change.error}", file=sys.stderr)
    return 0


def cmd_init(args) -> int:
    from .init import init_project

    written = init_project(Path(args.dir), ci=args.ci, name=args.name, force=args.force)
    for rel in written:
        print(f"wrote {rel}")
    print(f"next: cd {args.dir} && git init && pip install -e . && nbops setup")
    return 0


def cmd_setup(args) -> int:
    from .gitsetup import setup_clone

    for what in setup_clone(_settings().root):
        print(f"installed {what}")
    return 0


def cmd_config(args) -> int:
    from .config import describe

    for key, value, source in describe(_settings()):
        print(f"{key:<14} {value:<40} ({source})")
    return 0


def _canary(text: str) -> tuple[str, float]:
    alias, _, weight = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        value = -1.0
    if not alias or not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"expected ALIAS=PERCENT with 0 < PERCENT < 100, got {text!r}")
    return alias, value


def cmd_models(args) -> int:
    from .registry import Registry, as_rows, describe_event

    registry = Registry(_settings())
    if args.models_command == "list":
        info, versions = registry.versions(args.name)
        rows = as_rows(info, versions)
        if args.format == "json":
            print(json.dumps({"name": info.name, "compare": info.compare,
                              "higher_is_better": info.higher_is_better, "versions": rows}, indent=1))
            return 0
        from .report import print_versions

        print_versions(info, rows)
        return 0
    if args.models_command == "promote":
        event = registry.promote(args.name, args.version, args.alias, by=args.by or "")
        print(describe_event(args.name, event))
        return 0
    if args.models_command == "approve":
        version = registry.approve(args.name, args.version, args.by, args.note or "")
        print(f"{args.name} version {version.version} approved by {version.approved_by} "
              f"at {version.tags.get('nbops.approved_at', '')}")
        return 0
    event = registry.rollback(args.name, args.alias, by=args.by or "")
    print(describe_event(args.name, event))
    return 0


def cmd_serve(args) -> int:
    from .serve import ServeOptions, serve

    canary = dict(args.canary or [])  # serve() checks the weights and aliases
    options = ServeOptions(name=args.name, host=args.host, port=args.port, canary=canary,
                           reload_interval=args.reload_interval, max_body=args.max_body,
                           log_requests=not args.quiet)
    return serve(_settings(), options)


def cmd_predict(args) -> int:
    from .predict import predict_file

    result = predict_file(_settings(), args.model, Path(args.input), Path(args.output),
                          chunk_size=args.chunk_size, progress=not args.quiet)
    print(f"wrote {result.rows} prediction(s) from {result.model} to {result.output} in "
          f"{result.duration:.1f}s ({result.rows_per_second:,.0f} rows/s after loading the model)")
    return 0


def cmd_monitor(args) -> int:
    from .monitor import monitor
    from .monitor_report import print_report

    settings = _settings()
    name = args.name
    if args.retrain:  # checked before monitoring: retrain always starts from the champion
        from .registry import parse_ref

        name, alias, version = parse_ref(args.name)
        if version or alias not in (None, "champion"):
            raise NbopsError(f"--retrain retrains the champion, not {args.name}",
                             hint=f"nbops monitor {name} ... --retrain")
    elif args.data_param:
        raise NbopsError("--data-param goes with --retrain", hint="add --retrain or drop --data-param")
    report = monitor(settings, args.name, Path(args.reference), Path(args.current),
                     labels=args.labels, out_dir=Path(args.out))
    print_report(report)
    if report.alarm and args.retrain:
        from .rerun import print_retrain, retrain

        print_retrain(retrain(settings, name, Path(args.current), param=args.data_param,
                              quiet=args.quiet))
    return 1 if report.alarm else 0


def cmd_retrain(args) -> int:
    from .rerun import print_retrain, retrain

    result = retrain(_settings(), args.name, Path(args.data), param=args.data_param, quiet=args.quiet)
    print_retrain(result)
    return 0 if result.ok else 1


def cmd_reproduce(args) -> int:
    from .rerun import print_reproduce, reproduce

    result = reproduce(_settings(), args.model, tolerance=args.tolerance, quiet=args.quiet)
    print_reproduce(result)
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbops",
        description="Run parameterised notebooks with papermill and track every run in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"nbops {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and kernel logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="execute notebooks and track them in MLflow")
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    run.add_argument("--changed", action="store_true",
                     help="run what `nbops plan --base REF` lists (changed and not cached)")
    run.add_argument("--base", metavar="REF", help="with --changed: the ref to compare with")
    run.add_argument("--head", metavar="REF", help="with --changed: default the working tree")
    run.add_argument("--no-cache", action="store_true", help="with --changed: ignore cached results")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="override a parameter (repeatable)")
    run.add_argument("-f", "--params-file", metavar="FILE", help="YAML file of parameter values")
    run.add_argument("--output-dir", metavar="DIR", help="where executed notebooks go (default runs/)")
    run.add_argument("--timeout", type=_seconds, metavar="S", help="limit for a whole notebook, seconds")
    run.add_argument("--cell-timeout", type=_seconds, metavar="S", help="limit for one cell, seconds")
    run.add_argument("--jobs", "-j", type=_positive_int, default=os.cpu_count() or 1, metavar="N",
                     help="notebooks at once, each in a fresh kernel (default: the number of cores)")
    run.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress, only the summary")
    _add_executor_flags(run)
    run.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (default sqlite:///mlflow.db)")
    run.add_argument("--experiment", metavar="NAME", help="MLflow experiment (default: one per notebook)")
    run.set_defaults(func=cmd_run)

    swp = sub.add_parser("sweep", help="run one notebook over a grid of parameter values")
    swp.add_argument("notebook", metavar="NOTEBOOK")
    swp.add_argument("-p", "--param", action="append", default=[], metavar="NAME=V1,V2,...",
                     help="values to sweep for a parameter (repeatable; the grid is their product)")
    swp.add_argument("-f", "--grid-file", metavar="FILE", help="YAML: NAME: [V1, V2, ...]")
    swp.add_argument("--random", type=_positive_int, metavar="K", help="K random points of the grid")
    swp.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    swp.add_argument("--jobs", "-j", type=_positive_int, default=os.cpu_count() or 1, metavar="N")
    swp.add_argument("--no-register", action="store_true", help="do not register the best model")
    swp.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    swp.add_argument("--quiet", "-q", action="store_true", help="no progress, only the summary")
    _add_executor_flags(swp)
    swp.set_defaults(func=cmd_sweep)

    new = sub.add_parser("new", help="make notebooks/NAME.ipynb from a template")
    new.add_argument("template", metavar="TEMPLATE", help="template name (see `nbops templates`) or path")
    new.add_argument("name", metavar="NAME")
    new.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                     help="a default to write into the parameters cell (repeatable)")
    new.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    new.set_defaults(func=cmd_new)

    tpl = sub.add_parser("templates", help="list templates and their parameters")
    tpl.set_defaults(func=cmd_templates)

    chk = sub.add_parser("check", help="find committed outputs, unseeded randomness, paths, secrets, lint")
    chk.add_argument("paths", nargs="*", metavar="PATH", help="notebooks or folders (default: the project)")
    chk.add_argument("--fix", action="store_true", help="strip outputs and execution counts in place")
    chk.add_argument("--format", choices=("text", "json"), default="text")
    chk.add_argument("--no-lint", action="store_true", help="skip ruff's findings")
    chk.set_defaults(func=cmd_check)

    pln = sub.add_parser("plan", help="which notebooks a change affects, why, and on which runner")
    pln.add_argument("--base", metavar="REF", help="compare with this ref (e.g. origin/main, HEAD~1)")
    pln.add_argument("--head", metavar="REF", help="default: the working tree")
    pln.add_argument("--all", action="store_true", help="every notebook, changed or not")
    pln.add_argument("--no-cache", action="store_true", help="also list notebooks whose result exists")
    pln.add_argument("--format", choices=("json", "github", "gitlab"), default="json",
                     help="json: a GitHub matrix; github: lines for $GITHUB_OUTPUT; gitlab: a child pipeline")
    pln.set_defaults(func=cmd_plan)

    rev = sub.add_parser("review", help="markdown and HTML diffs of the notebooks changed between two refs")
    rev.add_argument("--base", required=True, metavar="REF", help="e.g. origin/main or HEAD~1")
    rev.add_argument("--head", default="HEAD", metavar="REF", help="default HEAD")
    rev.add_argument("--out", default="review", metavar="DIR", help="output folder (default review/)")
    rev.add_argument("--run", action="store_true",
                     help="execute changed notebooks at head and compare metrics with base")
    rev.set_defaults(func=cmd_review)

    ini = sub.add_parser("init", help="scaffold a new project: templates, example, src/, CI, hooks")
    ini.add_argument("dir", metavar="DIR")
    ini.add_argument("--ci", choices=("github", "gitlab"), default="github")
    ini.add_argument("--name", help="project name (default: the folder's name)")
    ini.add_argument("--force", action="store_true", help="overwrite existing files")
    ini.set_defaults(func=cmd_init)

    stp = sub.add_parser("setup", help="install pre-commit hooks, nbdime drivers and nbstripout's filter")
    stp.set_defaults(func=cmd_setup)

    mdl = sub.add_parser("models", help="registered versions: list by metric, promote, approve, roll back")
    msub = mdl.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="every version, best compare metric first")
    lst.add_argument("name", metavar="NAME")
    lst.add_argument("--format", choices=("text", "json"), default="text")
    pro = msub.add_parser("promote", help="move an alias (champion needs held gates, and approval if required)")
    pro.add_argument("name", metavar="NAME")
    pro.add_argument("version", metavar="VERSION")
    pro.add_argument("--alias", required=True, choices=("champion", "challenger"))
    pro.add_argument("--by", metavar="WHO", help="who moves it (default: your user name)")
    apv = msub.add_parser("approve", help="approve a version for champion (a tag with who and when)")
    apv.add_argument("name", metavar="NAME")
    apv.add_argument("version", metavar="VERSION")
    apv.add_argument("--by", required=True, metavar="WHO")
    apv.add_argument("--note", metavar="TEXT")
    rbk = msub.add_parser("rollback", help="undo the last move of an alias")
    rbk.add_argument("name", metavar="NAME")
    rbk.add_argument("--alias", default="champion", choices=("champion", "challenger"))
    rbk.add_argument("--by", metavar="WHO")
    mdl.set_defaults(func=cmd_models)

    srv = sub.add_parser("serve", help="HTTP predictions from NAME@champion, with a canary split")
    srv.add_argument("name", metavar="NAME")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=5050, help="default 5050")
    srv.add_argument("--canary", type=_canary, action="append", metavar="ALIAS=PERCENT",
                     help="send PERCENT of requests to NAME@ALIAS, e.g. challenger=10")
    srv.add_argument("--reload-interval", type=_seconds, metavar="S",
                     help="check the aliases every S seconds and load moved versions")
    srv.add_argument("--max-body", type=_positive_int, default=10 * 1024 * 1024, metavar="BYTES",
                     help="larger request bodies get 413 (default 10 MiB)")
    srv.add_argument("--quiet", "-q", action="store_true", help="no access log")
    srv.set_defaults(func=cmd_serve)

    prd = sub.add_parser("predict", help="batch predictions over a CSV or Parquet file")
    prd.add_argument("model", metavar="NAME[@ALIAS|/VERSION]")
    prd.add_argument("--input", required=True, metavar="FILE", help=".csv or .parquet")
    prd.add_argument("--output", required=True, metavar="FILE", help=".csv or .parquet")
    prd.add_argument("--chunk-size", type=_positive_int, default=50_000, metavar="ROWS")
    prd.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    prd.set_defaults(func=cmd_predict)

    mon = sub.add_parser("monitor", help="drift of current data from reference data; decay with labels")
    mon.add_argument("name", metavar="NAME[@ALIAS|/VERSION]")
    mon.add_argument("--reference", required=True, metavar="FILE", help="the data the model trained on")
    mon.add_argument("--current", required=True, metavar="FILE", help="the data it sees now")
    mon.add_argument("--labels", metavar="COLUMN", help="true labels in CURRENT: compare the metric too")
    mon.add_argument("--out", default="monitor", metavar="DIR", help="report folder (default monitor/)")
    mon.add_argument("--retrain", action="store_true", help="on drift, retrain on CURRENT")
    mon.add_argument("--data-param", metavar="NAME", help="with --retrain: the notebook's data parameter")
    mon.add_argument("--quiet", "-q", action="store_true")
    mon.set_defaults(func=cmd_monitor)

    rtr = sub.add_parser("retrain", help="re-run the champion's notebook at its git sha on new data")
    rtr.add_argument("name", metavar="NAME")
    rtr.add_argument("--data", required=True, metavar="FILE")
    rtr.add_argument("--data-param", metavar="NAME",
                     help="the notebook parameter that takes the data path (default: found by name)")
    rtr.add_argument("--quiet", "-q", action="store_true")
    rtr.set_defaults(func=cmd_retrain)

    rep = sub.add_parser("reproduce", help="re-run a version's notebook and compare its metrics")
    rep.add_argument("model", metavar="NAME[@ALIAS|/VERSION]")
    rep.add_argument("--tolerance", type=float, metavar="X",
                     help="largest metric difference that passes (default [tool.nbops.monitor])")
    rep.add_argument("--quiet", "-q", action="store_true")
    rep.set_defaults(func=cmd_reproduce)

    cfg = sub.add_parser("config", help="print the settings and where each came from")
    cfg.set_defaults(func=cmd_config)
    return parser


def _crash_log(root: Path) -> Path:
    for base in (root / ".nbops", Path("/tmp")):
        try:
            base.mkdir(parents=True, exist_ok=True)
            path = base / f"crash-{time.strftime('%Y%m%d-%H%M%S')}.log"
            path.write_text(traceback.format_exc(), encoding="utf-8")
            return path
        except OSError:
            continue
    return Path("-")


def main(argv: list[str] | None = None) -> int:
    from ._imports import skip_slow_optional_imports

    skip_slow_optional_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except NbopsError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"nbops: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nbops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, print one line
        if args.debug:
            traceback.print_exc()
        log = _crash_log(Path.cwd())
        print(f"nbops: internal error: {type(exc).__name__}: {exc} (traceback in {log})", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
