"""What the model commands print: `models list` (a table or JSON), alias moves, `retrain`,
`reproduce`."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from nbops.lifecycle.rerun import ReproduceResult, RetrainResult
from nbops.lifecycle.versions import AliasEvent, ModelInfo, VersionInfo


def describe_event(name: str, event: AliasEvent) -> str:
    to = f"version {event.to_version}"
    was = f" (was version {event.from_version})" if event.from_version else ""
    return f"{name}@{event.alias} -> {to}{was}, by {event.by} at {event.at}"


def as_rows(info: ModelInfo, versions: list[VersionInfo]) -> list[dict[str, Any]]:
    """One row per version for `nbops models list` (table or JSON); metrics as MLflow has them,
    NaN included (`json_safe` makes them null for JSON)."""
    rows = []
    for v in versions:
        rows.append({
            "version": v.version,
            "compare": info.compare,
            "value": v.metrics.get(info.compare) if info.compare else None,
            "metrics": {k: v.metrics[k] for k in sorted(v.metrics) if k != info.compare},
            "notebook": v.notebook,
            "git_sha": v.git_sha[:10],
            "params_digest": v.params_digest,
            "aliases": list(v.aliases),
            "approved_by": v.approved_by,  # the latest approver
            "approved_at": v.tags.get("nbops.approved_at", ""),
            "approvers": v.approvers,  # each person once, in the order they first approved
            "approvals": [{"by": a.by, "at": a.at, "note": a.note} for a in v.approvals],
            "gates": v.tags.get("nbops.gates", ""),
            "run_id": v.run_id,
        })
    return rows


def print_versions(info: ModelInfo, rows: list[dict], file: TextIO | None = None) -> None:
    """`nbops models list`: best compare metric first; the version number is only a column."""
    from rich.console import Console
    from rich.table import Table

    file = file or sys.stdout
    console = Console(file=file, width=None if file.isatty() else 200, highlight=False)
    direction = "higher" if info.higher_is_better else "lower"
    title = f"{info.name}: ranked by {info.compare} ({direction} is better)" if info.compare else (
        f"{info.name}: no compare metric in the notebook's metadata, newest first")
    table = Table(title=title, title_justify="left")
    for col in ("rank", info.compare or "metric", "other metrics", "version", "aliases", "approved",
                "notebook", "git sha", "params"):
        table.add_column(col, overflow="fold")
    for rank, row in enumerate(rows, 1):
        value = row["value"]
        others = ", ".join(f"{k}={v:.4g}" for k, v in list(row["metrics"].items())[:4])
        approvers = row.get("approvers") or ([row["approved_by"]] if row["approved_by"] else [])
        approved = f"{', '.join(approvers)} {row['approved_at']}".strip() or "-"
        table.add_row(str(rank), "-" if value is None else f"{value:.4g}", others or "-", row["version"],
                      ", ".join(row["aliases"]) or "-", approved, row["notebook"] or "-",
                      row["git_sha"] or "-", row["params_digest"][:8] or "-")
    console.print(table)


def model_rows(models: list[tuple[ModelInfo, list[VersionInfo]]]) -> list[dict[str, Any]]:
    """One row per registered model for `nbops models list` without a name: its versions, the
    latest, its aliases, and its best version by the compare metric (VERSIONS ranked, best first)."""
    rows = []
    for info, versions in models:
        best = versions[0] if versions else None
        value = best.metrics.get(info.compare) if best is not None and info.compare else None
        rows.append({
            "name": info.name,
            "versions": len(versions),
            "latest_version": max((v.version for v in versions), key=int, default=None),
            "aliases": dict(sorted(info.aliases.items())),
            "compare": info.compare,
            "higher_is_better": info.higher_is_better,
            "best_version": best.version if best is not None and value is not None else None,
            "best_value": value,
        })
    return rows


def print_models(rows: list[dict], file: TextIO | None = None) -> None:
    """`nbops models list`: every registered model, by name."""
    from rich.console import Console
    from rich.table import Table

    file = file or sys.stdout
    if not rows:
        print("no model is registered yet (nbops run registers a notebook's model when its gates "
              "hold)", file=file)
        return
    console = Console(file=file, width=None if file.isatty() else 200, highlight=False)
    table = Table(title="registered models (nbops models list NAME: its versions)", title_justify="left")
    for col in ("model", "versions", "latest", "aliases", "compare metric", "best"):
        table.add_column(col, overflow="fold")
    for row in rows:
        aliases = ", ".join(f"{a}=v{v}" for a, v in row["aliases"].items()) or "-"
        compare = (f"{row['compare']} ({'higher' if row['higher_is_better'] else 'lower'} is better)"
                   if row["compare"] else "-")
        best = "-" if row["best_value"] is None else f"{row['best_value']:.4g} (v{row['best_version']})"
        table.add_row(row["name"], str(row["versions"]), f"v{row['latest_version']}" if row["latest_version"]
                      else "-", aliases, compare, best)
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def print_retrain(result: RetrainResult, file: TextIO | None = None) -> None:
    file = file or sys.stdout
    champ = result.champion
    if not result.version:
        print(f"retrain of {result.name} (champion v{champ.version} at {champ.git_sha[:10]}) "
              f"registered nothing: {result.note}", file=file)
        return
    print(f"retrained {result.name} v{champ.version} at git {champ.git_sha[:10]} on new data "
          f"(digest {result.data_digest[:12]}): v{result.version} is challenger", file=file)
    print(f"{'metric':<24} {'champion':>12} {'challenger':>12} {'delta':>12}", file=file)
    for m in result.metrics:
        mark = " *" if m.name == result.compare else ""
        delta = "-" if m.diff is None else f"{m.diff:+.4g}"
        print(f"{m.name + mark:<24} {_fmt(m.registered):>12} {_fmt(m.new):>12} {delta:>12}", file=file)
    if result.better is not None:
        # each version's number is from its own validation split: the old data's and the new's
        print(f"challenger is {'better' if result.better else 'not better'} on {result.compare} "
              "(each measured on its own training data's validation split)", file=file)
    if result.promoted:
        print(f"promoted {result.name} v{result.version} to champion (auto_promote)", file=file)
    if result.note:
        print(result.note, file=file)


def print_reproduce(result: ReproduceResult, file: TextIO | None = None) -> None:
    file = file or sys.stdout
    v = result.version
    if not result.ran:
        print(f"reproduce {v.name} v{v.version}: {result.note}", file=file)
        return
    print(f"{'metric':<24} {'registered':>14} {'reproduced':>14} {'difference':>12}", file=file)
    for m in result.metrics:
        diff = "-" if m.diff is None else f"{m.diff:+.3g}"
        print(f"{m.name:<24} {_fmt(m.registered):>14} {_fmt(m.new):>14} {diff:>12}", file=file)
    bad = result.mismatches
    verdict = (f"reproduced {v.name} v{v.version}: every metric within {result.tolerance:g}" if result.ok
               else f"{v.name} v{v.version} did not reproduce: "
               + (", ".join(m.name for m in bad) if bad else "no metrics recorded")
               + f" differ by more than {result.tolerance:g}")
    print(verdict, file=file)
    if result.note:
        print(f"note: {result.note}", file=file)
