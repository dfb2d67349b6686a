"""review.md's pipeline graph: when a change adds, removes or changes what notebooks need
(`metadata.nbops.needs`), the graph of their pipelines at head as a Mermaid block (GitHub and
GitLab draw it), so a reviewer sees the new order, not only the JSON lines that made it."""

from __future__ import annotations

import os
from pathlib import Path

from nbops.core.errors import NotebookError
from nbops.notebook.document import from_dict, load
from nbops.pipeline import render
from nbops.pipeline.graph import build
from nbops.review.changes import NotebookReview


def _needs(nb: dict | None) -> list:
    meta = ((nb or {}).get("metadata") or {}).get("nbops") or {}
    needs = meta.get("needs") if isinstance(meta, dict) else None
    return needs if isinstance(needs, list) else []


def graph_block(root: Path, reviews: list[NotebookReview]) -> str:
    """Markdown for review.md ("" when no change touches a pipeline's graph)."""
    changed = [r.change for r in reviews if not r.change.error and _needs(r.change.base) != _needs(r.change.head)]
    if not changed:
        return ""
    try:  # the notebooks that need others at head; those they need as the checkout has them
        notebooks = [from_dict(r.change.head, root / r.change.path) for r in reviews
                     if not r.change.error and r.change.head is not None and _needs(r.change.head)]
        graph = build(notebooks, find=load)
    except NotebookError as exc:
        why = exc.one_line().replace(f"{root}{os.sep}", "")  # repo paths in a PR comment
        return f"### Pipeline graph\n\nThe pipeline graph at head is not valid: {why}\n"
    names = ", ".join(f"`{c.path}`" for c in changed)
    if not graph.nodes:
        return f"### Pipeline graph\n\nWhat notebooks need changed in {names}: at head no notebook needs another.\n"
    return (f"### Pipeline graph\n\nWhat notebooks need changed in {names}; the pipeline at head:\n\n"
            f"{render.mermaid(graph, root)}\n")
