"""What `nbops run` prints: a summary table (rich) and one plain line per problem.

Every cell of the table made from the user's text (paths, metric names, parameter values, model
names) is a rich `Text`, never markup: `[/x]` in a value would crash the table, `[bold]` restyle it.
"""

from __future__ import annotations

import sys
from typing import TextIO

from nbops.core.config import Settings
from nbops.core.context import device_name, relative_to_repo
from nbops.notebook.scraps import split_metrics
from nbops.run.runner import Outcome


def _key_metrics(outcome: Outcome, limit: int = 3) -> str:
    metrics, _ = split_metrics(outcome.result.records)
    model = outcome.result.spec.notebook.model
    preferred = [model.compare, *(g.metric for g in model.gates)] if model else []
    first = list(dict.fromkeys(m for m in preferred if m in metrics))
    names = first + sorted(k for k in metrics if k not in first)
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in names[:limit])


def _model_cell(outcome: Outcome) -> str:
    t = outcome.tracked
    if t is None:
        return "(not tracked)"
    if t.model_version:
        return f"{t.model_name} v{t.model_version}"
    return "-"


def exit_code(outcomes: list[Outcome]) -> int:
    """0 all ran and were recorded; 1 a notebook failed; 4 all ran but some run is only in the
    spool (the tracking server could not take it: `nbops sync` uploads it)."""
    if any(not o.result.ok for o in outcomes):
        return 1
    return 4 if any(o.unrecorded for o in outcomes) else 0


def summary_lines(outcomes: list[Outcome], settings: Settings) -> list[str]:
    """Plain lines for failures and unregistered models: easy to read in CI logs and to grep."""
    lines = []
    for o in outcomes:
        nb = relative_to_repo(o.result.spec.notebook.path, settings.root)
        out = relative_to_repo(o.result.output_path, settings.root)
        if o.result.status == "skipped":  # a pipeline's notebook whose upstream failed
            lines.append(f"SKIPPED {nb}: {o.result.error.evalue if o.result.error else 'not run'} (not run)")
        elif not o.result.ok:
            err = o.result.error
            saved = f"executed notebook: {out}" if o.result.output_path.exists() else "no executed notebook"
            lines.append(f"FAILED {nb}: {err} ({saved})")
            if err and err.ename == "DeadKernel" and o.result.kernel_log:
                lines.append(f"  kernel log: {relative_to_repo(o.result.kernel_log, settings.root)}")
        if o.unrecorded:
            lines.append(f"NOT RECORDED {nb}: {o.unrecorded}")
        elif o.ok and o.tracked and o.tracked.note and o.result.spec.notebook.model:
            lines.append(f"note {nb}: {o.tracked.note}")
        gpus = o.result.spec.notebook.resources.gpu
        if gpus and device_name() == "cpu":
            lines.append(f"note {nb}: asks for {gpus} GPU(s) but this machine has none")
    return lines


def print_summary(outcomes: list[Outcome], settings: Settings, file: TextIO | None = None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    file = file or sys.stdout
    console = Console(file=file, width=None if file.isatty() else 160, highlight=False)
    table = Table(title=None, show_lines=False)
    for col in ("notebook", "status", "duration", "metrics", "model", "run"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        status = "[green]ok[/]" if o.ok else ("[red]not recorded[/]" if o.unrecorded else "[red]failed[/]")
        if o.result.status == "skipped":
            status = "[yellow]skipped[/]"
        run_id = o.tracked.run_id[:8] if o.tracked else "-"
        table.add_row(
            Text(relative_to_repo(o.result.spec.notebook.path, settings.root)),
            status,
            f"{o.result.duration:.1f}s",
            Text(_key_metrics(o)),
            Text(_model_cell(o)),
            run_id,
        )
    console.print(table)
    for line in summary_lines(outcomes, settings):
        print(line, file=file)


def print_sweep(result, settings: Settings, file: TextIO | None = None) -> None:
    """The points, best first by the compare metric, then the sweep's outcome in plain lines."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    file = file or sys.stdout
    console = Console(file=file, width=None if file.isatty() else 160, highlight=False)
    table = Table()
    for col in ("#", "parameters", "status", result.metric or "metric", "duration", "run"):
        table.add_column(Text(col), overflow="fold")
    for i in result.ranked():
        o = result.outcomes[i]
        value = split_metrics(o.result.records)[0].get(result.metric) if result.metric else None
        table.add_row(
            str(i + 1),
            Text(", ".join(f"{k}={v!r}" for k, v in result.points[i].items())),
            "[green]ok[/]" if o.ok else "[red]failed[/]",
            "-" if value is None else f"{value:.4g}",
            f"{o.result.duration:.1f}s",
            o.tracked.run_id[:8] if o.tracked else "-",
        )
    console.print(table)
    for line in summary_lines(result.outcomes, settings):
        print(line, file=file)
    if result.parent_run_id:
        print(f"sweep run {result.parent_run_id[:8]}: {len(result.points)} points", file=file)
    if result.best is not None:
        best = ", ".join(f"{k}={v!r}" for k, v in result.points[result.best].items())
        print(f"best: point {result.best + 1} ({best})", file=file)
    if result.model_version:
        print(f"registered {result.model_name} v{result.model_version} from the best point", file=file)
    elif result.note:
        print(f"note: {result.note}", file=file)
