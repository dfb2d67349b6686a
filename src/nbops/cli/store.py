"""`nbops doctor`: the project's MLflow store checked for what nbops needs."""

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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    doc = sub.add_parser("doctor", help="check the MLflow store: reachable, can create runs, "
                                        "write artifacts, register models (exit 1 on a failure)")
    doc.add_argument("--tracking-uri", help="check this store instead of the project's")
    doc.set_defaults(func=cmd_doctor)
