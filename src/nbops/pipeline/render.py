"""A pipeline's graph for people: text lines (`nbops plan --graph`) and a Mermaid block
(review.md, which GitHub and GitLab draw)."""

from __future__ import annotations

from pathlib import Path

from nbops.pipeline.graph import Graph


def _label(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def text(graph: Graph, root: Path) -> list[str]:
    """One line per notebook, layer by layer: `2  notebooks/p/train.ipynb  needs prepare`."""
    lines = []
    for i, layer in enumerate(graph.layers, 1):
        for k in layer:
            node = graph.node(k)
            needs = f"  needs {', '.join(graph.node(d).name for d in node.needs)}" if node.needs else ""
            external = "  (not given: its newest successful run is used)" if node.external else ""
            lines.append(f"{i}  {_label(node.notebook.path, root)}{needs}{external}")
    return lines


def mermaid(graph: Graph, root: Path) -> str:
    """A ```mermaid flowchart: one box per notebook, an arrow from each need to its notebook."""
    ids = {n.key: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["```mermaid", "flowchart LR"]
    for node in graph.nodes:
        label = _label(node.notebook.path, root).replace('"', "#quot;")
        lines.append(f'  {ids[node.key]}["{label}"]')
    for node in graph.nodes:
        lines.extend(f"  {ids[d]} --> {ids[node.key]}" for d in node.needs)
    lines.append("```")
    return "\n".join(lines)
