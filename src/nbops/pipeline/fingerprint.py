"""A pipeline notebook's fingerprint includes its upstreams': a change to `prepare` changes the
fingerprints of everything downstream of it, so `nbops plan` and `run --changed` rerun exactly
the affected notebooks and a cached result is never one computed from other inputs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from nbops.pipeline.graph import Graph


def combined(graph: Graph, own: Mapping[Path, str]) -> dict[Path, str]:
    """Node key -> fingerprint. OWN: each node's own (source, parameters, imports, data). A node
    that needs nothing keeps its own, so caches made before pipelines existed stay valid."""
    out: dict[Path, str] = {}
    for node in graph.nodes:  # upstream first
        if not node.needs:
            out[node.key] = own[node.key]
            continue
        h = hashlib.sha256(own[node.key].encode())
        for name, fp in sorted((graph.node(k).name, out[k]) for k in node.needs):
            h.update(b"\0" + name.encode() + b"=" + fp.encode())
        out[node.key] = h.hexdigest()
    return out
