"""Option types and flags that several commands share; no command logic."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any


def settings(**flags: Any):
    from nbops.core.config import load_settings

    return load_settings(flags=flags)


# commands that never open the MLflow store: CI's tracking-server check does not apply to them
_NO_STORE = {"new", "templates", "init", "setup", "config", "check"}


def check_store(args: argparse.Namespace) -> None:
    """Before a command that opens the MLflow store: in CI with require_tracking_server, a missing
    or empty MLFLOW_TRACKING_URI is a one-line error (core/config.check_tracking_server); elsewhere
    an empty one gets a note that the embedded store is in use."""
    if (args.command in _NO_STORE or getattr(args, "no_track", False) or getattr(args, "prepare_only", False)
            or (args.command == "review" and not args.run) or (args.command == "plan" and args.no_cache)):
        return
    from nbops.core.config import check_tracking_server

    note = check_tracking_server(settings(tracking_uri=getattr(args, "tracking_uri", None)))
    if note:
        print(f"nbops: {note}", file=sys.stderr)


def seconds(text: str) -> float:
    """A positive, finite number of seconds (`nan` and `inf` would disable a limit)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def port(text: str) -> int:
    """A TCP port, 0 meaning any free one."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def canary(text: str) -> tuple[str, float]:
    alias, _, weight = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        value = -1.0
    if not alias or not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"expected ALIAS=PERCENT with 0 < PERCENT < 100, got {text!r}")
    return alias, value


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local kernels (default) or Ray tasks (pip install 'nbops[ray]')")
    parser.add_argument("--ray-address", metavar="ADDR",
                        help="Ray cluster to join (default: start a local one)")


def add_kernel_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kernel", "-k", metavar="NAME",
                        help="Jupyter kernel to run on instead of the notebook's kernelspec (papermill's -k)")


def print_notes(specs: list) -> None:
    """One line per note a RunSpec carries (e.g. no kernelspec: the Python kernel is used)."""
    for spec in specs:
        if spec.note:
            print(f"nbops: note: {spec.note}", file=sys.stderr)


def add_jobs_flag(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument("--jobs", "-j", type=positive_int, default=os.cpu_count() or 1, metavar="N",
                        help=help_text)


def add_quiet_flag(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help=help_text)


def add_param_flags(parser: argparse.ArgumentParser, help_text: str, with_file: bool = True) -> None:
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help=help_text)
    if with_file:
        parser.add_argument("-f", "--params-file", metavar="FILE", help="YAML file of parameter values")


def executor(args: argparse.Namespace, specs: list) -> tuple[Any, int]:
    """(executor, jobs): the local one with --jobs, or Ray, which schedules every spec itself."""
    from nbops.run.executors import RayExecutor, local_execute

    if args.executor != "ray":
        return local_execute, args.jobs
    ray_executor = RayExecutor(args.ray_address)
    ray_executor.check(specs)
    return ray_executor, max(1, len(specs))


def overrides(args: argparse.Namespace) -> dict:
    from nbops.notebook.params import load_params_file, parse_assignments

    values = load_params_file(args.params_file) if getattr(args, "params_file", None) else {}
    values.update(parse_assignments(args.param))
    return values


def non_negative(text: str) -> float:
    """A finite number >= 0 (a tolerance)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value
