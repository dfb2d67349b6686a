"""`nbops lab`: JupyterLab for the project."""

from __future__ import annotations

import argparse

from nbops.cli import options


def cmd_lab(args: argparse.Namespace) -> int:
    from nbops.lab.config import launch

    return launch(options.settings(), args.port, open_browser=not args.no_browser)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "lab", help="JupyterLab for this project: templates, MLflow UI, tracked notebook jobs",
        description="Start JupyterLab in the project root on 127.0.0.1 with a token: the "
        "project's templates in the launcher, the MLflow UI one click away (reachable only "
        "through the lab, with its token), notebook jobs run by `nbops run`, and notebooks run "
        "by hand logging to the project's MLflow store. Ctrl-C, SIGTERM, SIGHUP or kill -9 of "
        "this process ends everything it started.")
    lab.add_argument("--port", type=options.positive_int, metavar="PORT",
                     help="port to listen on (default: Jupyter's, 8888 or the next free one)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    lab.set_defaults(func=cmd_lab)
