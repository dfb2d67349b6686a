"""`nbops doctor`: the project's MLflow store checked for what nbops needs; `nbops sync`: the
runs kept in .nbops/spool while the server was away, uploaded."""

from __future__ import annotations

import argparse
import time

from nbops.cli import options


def cmd_doctor(args: argparse.Namespace) -> int:
    from nbops.lifecycle.doctor import as_json, diagnose

    checks = diagnose(options.settings(tracking_uri=args.tracking_uri))
    if args.format == "json":
        print(as_json(checks))
    else:
        for check in checks:
            took = f" ({check.seconds:.1f} s)" if check.seconds >= 0.5 or not check.ok else ""
            print(f"{'ok' if check.ok else 'FAIL':<4}  {check.name:<17} {check.detail}{took}")
            if check.hint:
                print(f"      hint: {check.hint}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_sync(args: argparse.Namespace) -> int:
    import sys

    from nbops.lifecycle.registration import Registrar
    from nbops.lifecycle.sync import Synced, pending, sync

    settings = options.settings(tracking_uri=args.tracking_uri)
    if args.list:
        waiting = pending(settings)
        for w in waiting:
            what = w.problem or (f"{w.status}, {w.files} file(s), {w.models} model(s), ended "
                                 f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(w.end_time / 1000))}")
            print(f"{w.spool_id}  {w.notebook or '-'}  {what}")
        print(f"{len(waiting)} run(s) wait in .nbops/spool" if waiting else "nothing to sync: the spool is empty")
        return 0

    def said(done: Synced) -> None:
        if done.quarantined:
            print(f"quarantined {done.spool_id}: {done.quarantined}", file=sys.stderr)
        elif done.busy:
            print(f"skipped {done.spool_id}: another nbops process is uploading it")
        elif done.error:
            print(f"not synced {done.spool_id}: {done.error} (kept; run `nbops sync` again)")
        else:
            line = f"synced {done.notebook or done.spool_id}: run {done.run_id[:8]}"
            if done.model:
                line += f", registered {done.model}"
            elif done.note:
                line += f" ({done.note})"
            print(line)

    results = sync(settings, Registrar(), on_done=said)
    if not results:
        print("nothing to sync: the spool is empty")
    if any(r.error for r in results):
        return 4
    return 2 if any(r.quarantined for r in results) else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    doc = sub.add_parser("doctor", help="check the MLflow store: reachable, can create runs, "
                                        "write artifacts, register models (exit 1 on a failure)")
    doc.add_argument("--tracking-uri", help="check this store instead of the project's")
    doc.add_argument("--format", choices=("text", "json"), default="text",
                     help="json: one object (ok; checks with name, ok, detail, hint, seconds) for monitoring")
    doc.set_defaults(func=cmd_doctor)

    syn = sub.add_parser("sync", help="upload the runs kept in .nbops/spool while the tracking server "
                                      "was away (exit 4 when some are still not recorded)")
    syn.add_argument("--tracking-uri", help="upload to this store instead of the project's")
    syn.add_argument("--list", action="store_true", help="show what waits in the spool, upload nothing")
    syn.set_defaults(func=cmd_sync)
