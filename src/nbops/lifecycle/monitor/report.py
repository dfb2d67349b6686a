"""What `nbops monitor` shows and writes: the terminal table and summary lines, `drift.json`, and
a self-contained `drift.html` with one plot per feature (matplotlib's Agg canvas, inline PNG).

Pure rendering: a `MonitorReport` in, text out; `monitor.py` decides what drifted.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from nbops.core.files import json_safe

if TYPE_CHECKING:
    from nbops.lifecycle.monitor.stats import MonitorReport


def to_json(report: MonitorReport) -> str:
    data = {
        "model": report.model,
        "version": report.version,
        "reference": {"path": report.reference, "rows": report.reference_rows},
        "current": {"path": report.current, "rows": report.current_rows},
        "thresholds": report.thresholds,
        "alarm": report.alarm,
        "drift": report.drift,
        "drifted": [f.name for f in report.drifted],
        "features": [asdict(f) for f in report.features],
        "decay": asdict(report.decay) if report.decay else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return json.dumps(json_safe(data), indent=2) + "\n"


def _p(value: float) -> str:
    # a p-value below the smallest double prints as 0, which reads like a bug
    return f"{value:.2g}" if value > 0 else "<1e-300"


def summary(report: MonitorReport) -> list[str]:
    """Plain lines: which features drifted (or none), and the decay verdict with labels."""
    drifted = report.drifted
    if drifted:
        names = ", ".join(f"{f.name} (psi {f.psi:.2f}, p {_p(f.p_value)})" for f in drifted)
        within = "" if report.drift else (
            f" (within max_drifted_features = {report.thresholds['max_drifted_features']})")
        lines = [f"drift: {names}{within}"]
    else:
        lines = [f"no drift in {len(report.features)} features"]
    d = report.decay
    if d:
        verdict = "decay" if d.decayed else "no decay"
        change = f"worse by {d.drop:.4g}" if d.drop > 0 else f"better by {-d.drop:.4g}"
        lines.append(f"{verdict}: {d.metric} {d.current:.4g} on {d.rows} labelled rows vs "
                     f"{d.validation:.4g} at validation ({change}; the limit is a drop of "
                     f"{report.thresholds['metric_drop']:g})")
    return lines


def print_report(report: MonitorReport, file=None) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    file = file or sys.stdout
    console = Console(file=file, width=None if file.isatty() else 160, highlight=False)
    table = Table(title=f"{report.model} version {report.version}: {report.current} "
                        f"against {report.reference}", title_justify="left")
    for col in ("feature", "kind", "test", "statistic", "p-value", "psi", "drifted"):
        table.add_column(col, justify="right" if col in ("statistic", "p-value", "psi") else "left")
    for f in report.features:
        table.add_row(f.name, f.kind, f.test, f"{f.statistic:.4g}", _p(f.p_value),
                      f"{f.psi:.3f}", "[red]yes[/]" if f.drifted else "no")
    console.print(table)
    for line in summary(report):
        print(line, file=file)
    print(f"report: {report.html_path} (JSON: {report.json_path})", file=file)


def _plot(name: str, kind: str, ref, cur, drifted: bool) -> str:
    """One small overlay of the two distributions, as base64 PNG."""
    import base64
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Figure + Agg canvas directly: no pyplot, so no global backend or figure registry touched
    fig = Figure(figsize=(3.6, 2.3), dpi=80)
    FigureCanvasAgg(fig)
    # fixed margins: tight_layout costs more than drawing the plot
    ax = fig.add_axes((0.12, 0.22, 0.84, 0.66))
    colors = ("#4c72b0", "#c44e52" if drifted else "#dd8452")
    if kind == "numeric":
        ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
        both = np.concatenate([ref_ok, cur_ok])
        if both.size:
            # the middle 99% sets the range, so one outlier cannot squash the picture
            lo, hi = np.quantile(both, [0.005, 0.995])
            lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
            edges = np.linspace(lo, hi, 31)
            for values, color, label in ((ref_ok, colors[0], "reference"), (cur_ok, colors[1], "current")):
                if values.size:  # stairs draws one path; hist draws a patch per bar (slow)
                    density, _ = np.histogram(values, bins=edges, density=True)
                    ax.stairs(density, edges, fill=True, alpha=0.5, color=color, label=label)
    else:
        from nbops.lifecycle.monitor.stats import categorical_counts

        categories, ref_counts, cur_counts = categorical_counts(ref, cur)
        ref_share = ref_counts / max(ref_counts.sum(), 1)
        cur_share = cur_counts / max(cur_counts.sum(), 1)
        order = np.argsort(-(ref_share + cur_share))[:12]  # the most common categories
        x = np.arange(order.size)
        ax.bar(x - 0.2, ref_share[order], 0.4, color=colors[0], label="reference")
        ax.bar(x + 0.2, cur_share[order], 0.4, color=colors[1], label="current")
        ax.set_xticks(x, [str(categories[i])[:10] for i in order], rotation=45, ha="right", fontsize=7)
    ax.set_title(name, fontsize=9, color=colors[1] if drifted else "black",
                 fontweight="bold" if drifted else "normal")
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.drifted td{color:#b00;font-weight:600}
.verdict{font-size:1.1em;padding:.5em .8em;border-radius:4px}.alarm{background:#fde2e2}.ok{background:#e2f5e5}
.plots{display:flex;flex-wrap:wrap;gap:.6em}figure{margin:0;border:2px solid #eee;border-radius:4px}
figure.drifted{border-color:#c44e52}figcaption{font-size:.75em;padding:.2em .4em;color:#555}
"""


def to_html(report: MonitorReport, samples: dict[str, tuple[Any, Any]]) -> str:
    """One self-contained page: verdict, decay, the feature table, a plot per feature."""
    from html import escape

    rows, figures = [], []
    for f in report.features:
        cls = ' class="drifted"' if f.drifted else ""
        rows.append(f"<tr{cls}><td>{escape(f.name)}</td><td>{f.kind}</td><td>{f.test}</td>"
                    f'<td class="num">{f.statistic:.4g}</td><td class="num">{escape(_p(f.p_value))}</td>'
                    f'<td class="num">{f.psi:.3f}</td><td>{"yes" if f.drifted else "no"}</td></tr>')
        png = _plot(f.name, f.kind, *samples[f.name], f.drifted)
        figures.append(f'<figure{cls}><img alt="{escape(f.name)}" src="data:image/png;base64,{png}">'
                       f"<figcaption>{escape(f.name)}: {f.test} {f.statistic:.3g}, p {escape(_p(f.p_value))}, "
                       f"psi {f.psi:.3f}</figcaption></figure>")
    decay = ""
    if report.decay:
        d = report.decay
        decay = (f"<h2>Decay</h2><table><tr><th>metric</th><th>validation</th><th>current</th>"
                 f"<th>drop</th><th>decayed</th></tr><tr{' class=drifted' if d.decayed else ''}>"
                 f"<td>{escape(d.metric)}</td><td class=num>{d.validation:.4g}</td>"
                 f"<td class=num>{d.current:.4g}</td><td class=num>{d.drop:.4g}</td>"
                 f"<td>{'yes' if d.decayed else 'no'}</td></tr></table>")
    t = report.thresholds
    verdict = "<br>".join(escape(line) for line in summary(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>nbops monitor: {escape(report.model)} version {escape(report.version)}</title>
<style>{_CSS}</style></head><body>
<h1>Drift: {escape(report.model)} version {escape(report.version)}</h1>
<p>reference <code>{escape(report.reference)}</code> ({report.reference_rows} rows),
current <code>{escape(report.current)}</code> ({report.current_rows} rows).
A feature drifts when p &lt; {t['p_value']:g} and PSI &ge; {t['psi']:g};
alarm when more than {t['max_drifted_features']} features drift,
or the metric falls by more than {t['metric_drop']:g}.</p>
<p class="verdict {'alarm' if report.alarm else 'ok'}">{verdict}</p>
{decay}
<h2>Features</h2>
<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th><th>psi</th><th>drifted</th></tr>
{chr(10).join(rows)}
</table>
<div class="plots">
{chr(10).join(figures)}
</div>
</body></html>
"""
