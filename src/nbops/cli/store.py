"""`nbops doctor`: the project's MLflow store checked for what nbops needs; `nbops sync`: the
runs kept in .nbops/spool while the server was away, uploaded."""

from __future__ import annotations

import argparse

from nbops.cli import options


def cmd_doctor(args: argparse.Namespace) -> int:
    from nbops.lifecycle.doctor import diagnose

    checks = diagnose(options.settings(tracking_uri=args.tracking_uri))
    for check in checks:
        print(f"{'ok' if check.ok else 'FAIL':<4}  {check.name:<17} {check.detail}")
        if check.hint:
            print(f"      hint: {check.hint}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_sync(args: argparse.Namespace) -> int:
    from nbops.lifecycle.registration import Registrar
    from nbops.lifecycle.sync import Synced, sync

    def said(done: Synced) -> None:
        if done.error:
            print(f"not synced {done.spool_id}: {done.error} (kept; run `nbops sync` again)")
            return
        line = f"synced {done.notebook or done.spool_id}: run {done.run_id[:8]}"
        if done.replaced:
            line += f" (replaces the partial run {done.replaced[:8]})"
        if done.model:
            line += f", registered {done.model}"
        elif done.note:
            line += f" ({done.note})"
        print(line)

    results = sync(options.settings(tracking_uri=args.tracking_uri), Registrar(), on_done=said)
    if not results:
        print("nothing to sync: the spool is empty")
    return 4 if any(r.error for r in results) else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    doc = sub.add_parser("doctor", help="check the MLflow store: reachable, can create runs, "
                                        "write artifacts, register models (exit 1 on a failure)")
    doc.add_argument("--tracking-uri", help="check this store instead of the project's")
    doc.set_defaults(func=cmd_doctor)

    syn = sub.add_parser("sync", help="upload the runs kept in .nbops/spool while the tracking server "
                                      "was away (exit 4 when some are still not recorded)")
    syn.add_argument("--tracking-uri", help="upload to this store instead of the project's")
    syn.set_defaults(func=cmd_sync)
