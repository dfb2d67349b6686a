"""`nbops check`, `nbops plan`, `nbops review`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nbops.cli import options


def cmd_check(args: argparse.Namespace) -> int:
    from nbops.review.check import as_json, run_check

    settings = options.settings()
    findings = run_check(settings.root, args.paths,
                         (settings.notebooks_dir, settings.templates_dir), fix=args.fix,
                         lint=not args.no_lint)
    if args.format == "json":
        print(as_json(findings))
    else:
        for finding in findings:
            print(finding)
        if findings:
            print(f"{len(findings)} problem(s) in {len({f.path for f in findings})} notebook(s)", file=sys.stderr)
    return 1 if findings else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from nbops.ci.plan import as_github_output, as_gitlab_child, as_matrix, make_plan, where

    settings = options.settings()
    if args.graph:
        from nbops.ci.plan import graph_lines

        print("\n".join(graph_lines(settings)))
        return 0
    plan = make_plan(settings, args.base, args.head, all_=args.all, use_cache=not args.no_cache)
    for entry in plan.run:
        print(f"run {entry.notebook} on {where(plan, entry, args.format)}: {entry.reason}", file=sys.stderr)
    for entry, run_id in plan.cached:
        print(f"cached {entry.notebook}: run {run_id[:8]} has this fingerprint", file=sys.stderr)
    if args.format == "github":
        sys.stdout.write(as_github_output(plan))
    elif args.format == "gitlab":
        sys.stdout.write(as_gitlab_child(plan))
    else:
        print(json.dumps(as_matrix(plan), indent=1))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from nbops.review.changes import write_review
    from nbops.review.judged import plain_lines

    settings = options.settings()
    results = None
    if args.run:
        from nbops.review.results import run_and_compare

        def results(reviews):
            return run_and_compare(settings, reviews, args.base, args.head)

    md, reviews = write_review(settings.root, args.base, args.head, Path(args.out).resolve(), results)
    failed = [r for r in reviews if r.change.error]
    print(f"reviewed {len(reviews) - len(failed)} notebook(s) -> {md}")
    if reviews:
        print(f"side-by-side diffs: {md.parent / 'index.html'} (open in a browser; or nbdime's live tool:"
              f" nbdiff-web {args.base} {args.head} PATH)")
    for r in reviews:  # a loosened gate is said here too, not only in review.md (issue 23)
        block = plain_lines(r.judged)
        if block:
            print(f"{r.change.path}: " + "\n".join(block))
    for r in failed:
        print(f"could not review {r.change.path}: {r.change.error}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    chk = sub.add_parser("check", help="find committed outputs, unseeded randomness, paths, secrets, lint")
    chk.add_argument("paths", nargs="*", metavar="PATH", help="notebooks or folders (default: the project)")
    chk.add_argument("--fix", action="store_true", help="strip outputs and execution counts in place")
    chk.add_argument("--format", choices=("text", "json"), default="text")
    chk.add_argument("--no-lint", action="store_true", help="skip ruff's findings")
    chk.set_defaults(func=cmd_check)

    pln = sub.add_parser("plan", help="which notebooks a change affects, why, and on which runner")
    pln.add_argument("--base", metavar="REF", help="compare with this ref (e.g. origin/main, HEAD~1)")
    pln.add_argument("--head", metavar="REF", help="default: the working tree")
    pln.add_argument("--all", action="store_true", help="every notebook, changed or not")
    pln.add_argument("--no-cache", action="store_true", help="also list notebooks whose result exists")
    pln.add_argument("--graph", action="store_true",
                     help="print the pipelines of the project (metadata.nbops.needs), layer by layer")
    pln.add_argument("--format", choices=("json", "github", "gitlab"), default="json",
                     help="json: a GitHub matrix; github: lines for $GITHUB_OUTPUT; gitlab: a child pipeline")
    pln.set_defaults(func=cmd_plan)

    rev = sub.add_parser("review", help="markdown and HTML diffs of the notebooks changed between two refs",
                         description="Writes review.md (the pull request comment) and, in the same folder, "
                         "index.html with one nbdime side-by-side page per notebook (offline, file://). "
                         "For nbdime's live web tool instead: nbdiff-web BASE HEAD PATH")
    rev.add_argument("--base", required=True, metavar="REF", help="e.g. origin/main or HEAD~1")
    rev.add_argument("--head", default="HEAD", metavar="REF", help="default HEAD")
    rev.add_argument("--out", default="review", metavar="DIR", help="output folder (default review/)")
    rev.add_argument("--run", action="store_true",
                     help="execute changed notebooks at head and compare metrics with base")
    rev.set_defaults(func=cmd_review)
