"""One notebook as a test: its smoke parameters and expectations (`metadata.nbops.test`), a run
through nbops's runner in a fresh kernel with tracking off, its records checked against the
expectations (model gates' language), and a failure described the way pytest describes one.

::

    "nbops": {"test": {"params": {"epochs": 1}, "expect": ["accuracy >= 0.5"]}}

A notebook without a `test` key runs at its defaults and passes when no cell raises.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nbops.core.config import load_settings
from nbops.core.errors import NotebookError, ParameterError
from nbops.core.gates import Gate, parse_gate
from nbops.notebook import document
from nbops.notebook.document import Notebook, cell_source
from nbops.notebook.params import resolve
from nbops.run.engine import RunResult
from nbops.run.runner import check_kernels, run_specs
from nbops.run.spec import make_spec

SHAPE = 'e.g. "test": {"params": {"epochs": 1}, "expect": ["accuracy >= 0.5"]}'
# papermill's own cells in an executed notebook, not counted in cell numbers (as run/failure.py)
_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_FRAME = re.compile(r"^Cell In\s*\[[^\]]*\],\s*line (\d+)")
_FRAME = re.compile(r"^(Cell In\s*\[|File \S)")
EXCERPT_BEFORE, EXCERPT_AFTER, TRACEBACK_LINES = 6, 2, 30


class SmokeFailure(Exception):
    """A notebook's test failed: a cell raised, or an expectation does not hold. str() is the
    report pytest shows."""


@dataclass(frozen=True)
class Smoke:
    notebook: Notebook
    params: dict[str, Any]  # typed against the parameters cell
    expect: tuple[Gate, ...]

    def describe(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items()) or "default parameters"
        expect = "; expect " + ", ".join(map(str, self.expect)) if self.expect else ""
        return params + expect


def load_smoke(path: str | Path) -> Smoke:
    """The notebook at PATH and its `metadata.nbops.test`, checked (NotebookError naming the
    notebook and the key when it is malformed)."""
    nb = document.load(path)
    test = nb.metadata.get("test")
    where = f"{nb.path}: metadata.nbops.test"
    if test is None:
        return Smoke(nb, {}, ())
    if not isinstance(test, dict):
        raise NotebookError(f"{where} must be an object", hint=SHAPE)
    unknown = sorted(set(test) - {"params", "expect"})
    if unknown:
        raise NotebookError(f"{where}: unknown key '{unknown[0]}'", hint=f"keys: params, expect; {SHAPE}")
    params = test.get("params") or {}
    if not isinstance(params, dict):
        raise NotebookError(f"{where}.params must be an object of parameter values", hint=SHAPE)
    try:
        typed = resolve(nb, params)
    except ParameterError as exc:
        raise ParameterError(f"{exc.message} (in metadata.nbops.test.params)", hint=exc.hint) from None
    expect = test.get("expect") or []
    if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
        raise NotebookError(f"{where}.expect must be a list of strings", hint=SHAPE)
    gates = []
    for text in expect:
        try:
            gates.append(parse_gate(text, str(nb.path)))
        except NotebookError:
            raise NotebookError(f"{where}.expect: bad expectation {text!r}",
                                hint="write 'RECORD OP NUMBER', e.g. 'accuracy >= 0.5'") from None
    return Smoke(nb, typed, tuple(gates))


def run_smoke(smoke: Smoke, out_dir: Path) -> RunResult:
    """Run the notebook at its smoke parameters through nbops's runner, untracked, in a fresh
    kernel; the executed notebook (and a failed run's kernel log) is written under OUT_DIR."""
    settings = load_settings(smoke.notebook.path.parent)
    spec = make_spec(settings, smoke.notebook, smoke.params)
    spec = replace(spec, output_path=out_dir / smoke.notebook.path.name)
    check_kernels([spec])
    return run_specs(settings, [spec], track=False)[0].result


def _number(value: Any) -> float | None:
    """VALUE as a number: a recorded int or float, or `nbops.record`'s string for NaN and inf."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity"):
        return float(value)
    return None


def unmet(expect: tuple[Gate, ...], records: dict[str, Any]) -> list[str]:
    """Each expectation that does not hold, with what was observed."""
    problems = []
    for gate in expect:
        if gate.metric not in records:
            names = ", ".join(sorted(records)) or "none"
            problems.append(f"expectation '{gate}' failed: '{gate.metric}' was not recorded (records: {names})")
            continue
        value = _number(records[gate.metric])
        if value is None:
            shown = json.dumps(records[gate.metric], default=str)
            problems.append(f"expectation '{gate}' failed: {gate.metric} = {_short(shown)} is not a number")
        elif not math.isfinite(value):
            problems.append(f"expectation '{gate}' failed: {gate.metric} = {value} is not a finite number")
        elif gate.check({gate.metric: value}):
            problems.append(f"expectation '{gate}' failed: {gate.metric} = {value:.10g}")
    return problems


def check(smoke: Smoke, result: RunResult, shown_path: str) -> None:
    """Raise SmokeFailure when the run failed or an expectation does not hold."""
    if not result.ok:
        raise SmokeFailure(failure_report(result, shown_path))
    problems = unmet(smoke.expect, result.records)
    if problems:
        lines = [f"{shown_path}: {p}" for p in problems]
        lines.append(f"  run at: {smoke.describe()}")
        lines.append(f"  records: {format_records(result.records) or 'none'}")
        lines.append(f"  executed notebook: {result.output_path}")
        raise SmokeFailure("\n".join(lines))


def format_records(records: dict[str, Any]) -> str:
    return ", ".join(f"{name}={_short(json.dumps(value, default=str))}" for name, value in records.items())


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _executed_cells(result: RunResult) -> list[dict]:
    """The executed notebook's cells, papermill's own left out (numbered like the source's);
    the source notebook's when the run left no executed notebook."""
    try:
        nb = json.loads(result.output_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        nb = document.read_json(result.spec.notebook.path)
    return [c for c in nb.get("cells", []) if isinstance(c, dict)
            and not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags") or [])]


def _traceback(cell: dict) -> list[str]:
    for out in cell.get("outputs") or []:
        if out.get("output_type") == "error":
            text = "\n".join(out.get("traceback") or [])
            return [line.rstrip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    return []


def failure_report(result: RunResult, shown_path: str) -> str:
    """Like a failing test: where (notebook, cell), what (ename: evalue), the cell's source
    around the failing line, the deeper frames when the error came from a library, and where
    the executed notebook and the kernel's log are."""
    error = result.error
    what = str(error) if error else "failed"
    if error and error.cell:
        what = f"cell {error.cell}: " + (f"{error.ename}: {error.evalue}" if error.evalue else error.ename or "failed")
    lines = [f"{shown_path}: {what}"]
    cells = _executed_cells(result)
    if error and error.cell and error.cell <= len(cells):
        cell = cells[error.cell - 1]
        source = cell_source(cell).splitlines() or [""]
        tb = _traceback(cell)
        at = next((int(m.group(1)) for line in tb if (m := _CELL_FRAME.match(line))), None)
        if at is None or not 1 <= at <= len(source):
            at = None
            first, last = 1, min(len(source), EXCERPT_BEFORE + EXCERPT_AFTER + 1)
        else:
            first, last = max(1, at - EXCERPT_BEFORE), min(len(source), at + EXCERPT_AFTER)
        lines.append("")
        lines.append(f"cell {error.cell}" + (f", line {at}" if at else "") + ":")
        if first > 1:
            lines.append("        ...")
        for n in range(first, last + 1):
            lines.append(f"{'>' if n == at else ' '} {n:4d} | {source[n - 1]}")
        if last < len(source):
            lines.append("        ...")
        if error.ename:
            lines.append(f"E   {error.ename}: {error.evalue}" if error.evalue else f"E   {error.ename}")
        frames = [i for i, line in enumerate(tb) if _FRAME.match(line)]
        if len(frames) > 1:  # raised deeper than the cell itself: the frames below the cell's
            deeper = tb[frames[1]:]
            lines.append("")
            lines.append("traceback below the cell:" if len(deeper) <= TRACEBACK_LINES
                         else f"traceback below the cell (last {TRACEBACK_LINES} lines):")
            lines.extend(f"    {line}" for line in deeper[-TRACEBACK_LINES:])
    lines.append("")
    lines.append(f"executed notebook: {result.output_path}")
    if result.kernel_log:
        lines.append(f"kernel log: {result.kernel_log}")
    return "\n".join(lines)
