"""Where a notebook's output and papermill's logging go: a cell's streamed stdout and stderr
(`--log-output`) on nbops's stderr, each line labelled when several notebooks run at once;
papermill's, nbclient's and traitlets' own loggers quiet unless --debug."""

from __future__ import annotations

import logging
import sys

from nbops.run.spec import RunSpec


class _StderrHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is at each write (a test or a caller may have replaced it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


class _PrefixFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "notebook", "")
        lines = record.getMessage().rstrip("\n").split("\n")
        return "\n".join(f"{label} | {line}" if label else line for line in lines)


def output_logger(spec: RunSpec) -> logging.LoggerAdapter:
    """Where papermill's log_output sends a cell's stdout (info) and stderr (warning): nbops's
    stderr, each line prefixed with the notebook's label when several notebooks run at once."""
    logger = logging.getLogger("nbops.output")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_PrefixFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO)
    return logging.LoggerAdapter(logger, {"notebook": spec.label})


def quiet_loggers(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.CRITICAL
    for name in ("papermill", "nbops.kernel", "traitlets", "nbclient"):
        logging.getLogger(name).setLevel(level)
