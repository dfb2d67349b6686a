"""The `nbops` command: parse arguments, call one function, print. No logic lives here: each
command group is a module of this package (`run`, `project`, `review`, `models`, `store`).

Exit codes: 0 ok, 1 a notebook failed, 2 bad input (NbopsError), 3 a bug (traceback in a log
file), 4 ran but not recorded (the tracking server was lost: kept in .nbops/spool, `nbops sync`
uploads it), 130 interrupted, 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import NoReturn

from nbops import __version__
from nbops.cli import lab, models, options, project, review, run, store
from nbops.core.errors import NbopsError, Terminated, mask_uri


class _Parser(argparse.ArgumentParser):
    """argparse with nbops's error shape: one line naming the command, a hint, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (hint: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nbops",
        description="Run parameterised notebooks with papermill and track every run in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"nbops {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and kernel logs")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="say (once, on stderr) when nbops goes through MLflow's client instead of its fast paths")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in (run, project, review, models, store, lab):
        group.add_parsers(sub)
    return parser


def _traceback() -> str:
    """The traceback being handled, credentials in URIs masked (a library's exception, chained
    under ours, may quote a tracking URI with its password)."""
    return mask_uri(traceback.format_exc())


def _crash_log(root: Path) -> Path:
    """The traceback of a bug, in a file of its own (two crashes in one second get two files)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for base in (root / ".nbops", Path(tempfile.gettempdir())):
        try:
            base.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"crash-{stamp}-{os.getpid()}-", suffix=".log", dir=base)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(_traceback())
            return Path(name)
        except OSError:
            continue
    return Path("-")


def _terminate_like_interrupt() -> None:
    def terminated(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: cleaning up must not be cut short
        raise Terminated()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)


def _quiet_abandoned_futures() -> None:
    """Stopped by a signal, a kernel's client (nbclient, on its own event loop) can be left with
    a future holding "Kernel died", which asyncio logs with a traceback ("Future exception was
    never retrieved") when it is collected at exit. The one line already printed says it all."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    _terminate_like_interrupt()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if args.verbose:  # read where a fast path falls back to MLflow's client (core/mlflow_db.py)
        os.environ["NBOPS_VERBOSE"] = "1"
    try:
        options.check_store(args)
        return int(args.func(args))
    except NbopsError as exc:
        if args.debug:
            print(_traceback(), end="", file=sys.stderr)
        print(f"nbops: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except Terminated:
        _quiet_abandoned_futures()
        print("nbops: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        _quiet_abandoned_futures()
        print("nbops: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, print one line
        if args.debug:
            print(_traceback(), end="", file=sys.stderr)
        log = _crash_log(Path.cwd())
        line = mask_uri(f"{type(exc).__name__}: {exc}")
        print(f"nbops: internal error: {line} (traceback in {log})", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
