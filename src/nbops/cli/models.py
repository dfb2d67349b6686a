"""The model lifecycle: `nbops models`, `serve`, `predict`, `monitor`, `retrain`, `reproduce`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nbops.cli import options


def tell(text: str) -> None:
    """What a command is doing, on stderr at once: stdout stays the result alone."""
    print(f"nbops: {text} ...", file=sys.stderr, flush=True)


def _list_models(registry, fmt: str) -> int:
    from nbops.core.files import json_safe
    from nbops.lifecycle.reports import model_rows, print_models

    rows = model_rows([registry.versions(name) for name in registry.names()])
    if fmt == "json":
        print(json.dumps(json_safe({"models": rows}), indent=1, allow_nan=False))
    else:
        print_models(rows)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from nbops.core.files import json_safe
    from nbops.lifecycle.aliases import promote, rollback
    from nbops.lifecycle.approve import approve
    from nbops.lifecycle.eligibility import required_approvals
    from nbops.lifecycle.registry import Registry
    from nbops.lifecycle.reports import as_rows, describe_event

    registry = Registry(options.settings())
    if args.models_command == "list" and args.name is None:
        return _list_models(registry, args.format)
    if args.models_command == "list":
        info, versions = registry.versions(args.name)
        rows = as_rows(info, versions)
        if args.format == "json":
            # NaN and infinite metrics are null: a bare NaN is not JSON (allow_nan=False checks it)
            print(json.dumps(json_safe({"name": info.name, "compare": info.compare,
                                        "higher_is_better": info.higher_is_better,
                                        "approvals_required": required_approvals(registry.settings),
                                        "versions": rows}), indent=1, allow_nan=False))
            return 0
        from nbops.lifecycle.reports import print_versions

        print_versions(info, rows)
        return 0
    if args.models_command == "promote":
        event = promote(registry, args.name, args.version, args.alias, by=args.by or "", say=tell)
        print(describe_event(args.name, event))
        return 0
    if args.models_command == "approve":
        before = registry.get(args.name, args.version).approvers
        version = approve(registry, args.name, args.version, args.by, args.note or "", say=tell)
        approvers, needed = version.approvers, required_approvals(registry.settings)
        again = len(approvers) == len(before)  # this person had approved it already
        count = f"{len(approvers)} approver(s): {', '.join(approvers)}" + (
            f" of {needed} required" if needed > 1 else "")
        print(f"{args.name} version {version.version} approved by {version.approved_by} at "
              f"{version.tags.get('nbops.approved_at', '')}; {count}"
              + ("; an earlier approval by the same person, counted once" if again else ""))
        return 0
    event = rollback(registry, args.name, args.alias, by=args.by or "", say=tell)
    print(describe_event(args.name, event))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from nbops.lifecycle.serve.server import ServeOptions, serve

    canary = dict(args.canary or [])  # serve() checks the weights and aliases
    serve_options = ServeOptions(name=args.name, host=args.host, port=args.port, canary=canary,
                                 reload_interval=args.reload_interval, max_body=args.max_body,
                                 log_requests=not args.quiet, read_timeout=args.read_timeout)
    return serve(options.settings(), serve_options)


def cmd_predict(args: argparse.Namespace) -> int:
    from nbops.lifecycle.predict import predict_file

    result = predict_file(options.settings(), args.model, Path(args.input), Path(args.output),
                          chunk_size=args.chunk_size, progress=not args.quiet, proba=args.proba,
                          say=None if args.quiet else tell)
    print(f"wrote {result.rows} prediction(s) from {result.model} to {result.output} in "
          f"{result.duration:.1f}s ({result.rows_per_second:,.0f} rows/s after loading the model)")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from nbops.lifecycle.monitor.drift import monitor
    from nbops.lifecycle.monitor.report import print_report
    from nbops.lifecycle.rerun import retrain_target

    settings = options.settings()
    name = retrain_target(args.name, args.data_param, args.retrain)  # checked before monitoring
    report = monitor(settings, args.name, Path(args.reference), Path(args.current),
                     labels=args.labels, out_dir=Path(args.out))
    print_report(report)
    if report.alarm and args.retrain:
        from nbops.lifecycle.reports import print_retrain
        from nbops.lifecycle.rerun import retrain

        print_retrain(retrain(settings, name, Path(args.current), param=args.data_param,
                              quiet=args.quiet))
    return 1 if report.alarm else 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from nbops.lifecycle.reports import print_retrain
    from nbops.lifecycle.rerun import retrain

    result = retrain(options.settings(), args.name, Path(args.data), param=args.data_param,
                     quiet=args.quiet)
    print_retrain(result)
    return 0 if result.ok else 1


def cmd_reproduce(args: argparse.Namespace) -> int:
    from nbops.lifecycle.reports import print_reproduce
    from nbops.lifecycle.rerun import reproduce

    result = reproduce(options.settings(), args.model, tolerance=args.tolerance, quiet=args.quiet)
    print_reproduce(result)
    return 0 if result.ok else 1


def _add_models(sub: argparse._SubParsersAction) -> None:
    mdl = sub.add_parser("models", help="registered versions: list by metric, promote, approve, roll back")
    msub = mdl.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lst = msub.add_parser("list", help="every version of NAME, best compare metric first; without "
                                       "NAME every registered model")
    lst.add_argument("name", metavar="NAME", nargs="?")
    lst.add_argument("--format", choices=("text", "json"), default="text")
    pro = msub.add_parser("promote", help="move an alias (champion needs held gates, and approval if required)")
    pro.add_argument("name", metavar="NAME")
    pro.add_argument("version", metavar="VERSION")
    pro.add_argument("--alias", required=True, choices=("champion", "challenger"))
    pro.add_argument("--by", metavar="WHO", help="who moves it (default: your user name)")
    apv = msub.add_parser("approve", help="approve a version for champion (kept with every earlier approval; "
                                          "[tool.nbops.registry] require_approvals = N asks N people)")
    apv.add_argument("name", metavar="NAME")
    apv.add_argument("version", metavar="VERSION")
    apv.add_argument("--by", required=True, metavar="WHO")
    apv.add_argument("--note", metavar="TEXT")
    rbk = msub.add_parser("rollback", help="undo the last move of an alias")
    rbk.add_argument("name", metavar="NAME")
    rbk.add_argument("--alias", default="champion", choices=("champion", "challenger"))
    rbk.add_argument("--by", metavar="WHO")
    mdl.set_defaults(func=cmd_models)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    _add_models(sub)
    srv = sub.add_parser("serve", help="HTTP predictions from NAME@champion, with a canary split")
    srv.add_argument("name", metavar="NAME")
    srv.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=options.port, default=5050, help="default 5050; 0: any free port")
    srv.add_argument("--canary", type=options.canary, action="append", metavar="ALIAS=PERCENT",
                     help="send PERCENT of requests to NAME@ALIAS, e.g. challenger=10")
    srv.add_argument("--reload-interval", type=options.seconds, metavar="S",
                     help="check the aliases every S seconds and load moved versions")
    srv.add_argument("--max-body", type=options.positive_int, default=10 * 1024 * 1024, metavar="BYTES",
                     help="larger request bodies get 413 (default 10 MiB)")
    srv.add_argument("--read-timeout", type=options.seconds, default=30.0, metavar="S",
                     help="close a connection whose request has not arrived whole S seconds after "
                          "it opened or after the last response (default 30)")
    options.add_quiet_flag(srv, "no access log")
    srv.set_defaults(func=cmd_serve)

    prd = sub.add_parser("predict", help="batch predictions over a CSV or Parquet file")
    prd.add_argument("model", metavar="NAME[@ALIAS|/VERSION]")
    prd.add_argument("--input", required=True, metavar="FILE", help=".csv or .parquet")
    prd.add_argument("--output", required=True, metavar="FILE", help=".csv or .parquet")
    prd.add_argument("--chunk-size", type=options.positive_int, default=50_000, metavar="ROWS")
    prd.add_argument("--proba", action="store_true",
                     help="add a proba_<class> column per class (models with predict_proba)")
    options.add_quiet_flag(prd, "no progress bar, no line saying what it does")
    prd.set_defaults(func=cmd_predict)

    mon = sub.add_parser("monitor", help="drift of current data from reference data; decay with labels")
    mon.add_argument("name", metavar="NAME[@ALIAS|/VERSION]")
    mon.add_argument("--reference", required=True, metavar="FILE", help="the data the model trained on")
    mon.add_argument("--current", required=True, metavar="FILE", help="the data it sees now")
    mon.add_argument("--labels", metavar="COLUMN", help="true labels in CURRENT: compare the metric too")
    mon.add_argument("--out", default="monitor", metavar="DIR", help="report folder (default monitor/)")
    mon.add_argument("--retrain", action="store_true", help="on drift, retrain on CURRENT")
    mon.add_argument("--data-param", metavar="NAME", help="with --retrain: the notebook's data parameter")
    options.add_quiet_flag(mon)
    mon.set_defaults(func=cmd_monitor)

    rtr = sub.add_parser("retrain", help="re-run the champion's notebook at its git sha on new data")
    rtr.add_argument("name", metavar="NAME")
    rtr.add_argument("--data", required=True, metavar="FILE")
    rtr.add_argument("--data-param", metavar="NAME",
                     help="the notebook parameter that takes the data path (default: found by name)")
    options.add_quiet_flag(rtr)
    rtr.set_defaults(func=cmd_retrain)

    rep = sub.add_parser("reproduce", help="re-run a version's notebook and compare its metrics")
    rep.add_argument("model", metavar="NAME[@ALIAS|/VERSION]")
    rep.add_argument("--tolerance", type=options.non_negative, metavar="X",
                     help="largest metric difference that passes (default [tool.nbops.monitor])")
    options.add_quiet_flag(rep)
    rep.set_defaults(func=cmd_reproduce)
