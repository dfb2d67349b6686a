"""The graph of a pipeline: each notebook's `metadata.nbops.needs` (other notebooks, by stem)
resolved to notebooks, checked (a name nothing answers, a name two notebooks answer, a cycle)
and put in order: layers of notebooks whose needs all sit in earlier layers.

A need names a notebook by its file name without `.ipynb`. It is looked for among the notebooks
given, the needing notebook's own folder first; a name no notebook given has is looked for
beside the needing notebook on disk (an *external* node: `nbops run evaluate.ipynb` alone uses
the newest successful run of `train.ipynb` with its current fingerprint).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nbops.core.errors import NotebookError
from nbops.notebook.document import Notebook

NEEDS_HINT = 'metadata.nbops.needs lists notebooks by file name without .ipynb, e.g. "needs": ["prepare"]'


def key(path: Path) -> Path:
    """How a node is known: its absolute, normalised path (a link is not followed)."""
    return Path(os.path.normpath(os.path.abspath(path)))


def declared_needs(notebook: Notebook) -> tuple[str, ...]:
    """`metadata.nbops.needs`, checked: a list of distinct notebook names."""
    raw = notebook.metadata.get("needs", [])
    where = notebook.path
    if not isinstance(raw, list) or not all(isinstance(n, str) and n.strip() for n in raw):
        raise NotebookError(f"{where}: metadata.nbops.needs must be a list of notebook names, got {raw!r}",
                            hint=NEEDS_HINT)
    names: list[str] = []
    for name in raw:
        if "/" in name or "\\" in name or name.endswith(".ipynb"):
            raise NotebookError(f"{where}: need '{name}' is not a notebook name", hint=NEEDS_HINT)
        if name in names:
            raise NotebookError(f"{where}: need '{name}' is listed twice in metadata.nbops.needs",
                                hint="list each notebook it needs once")
        names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class Node:
    notebook: Notebook
    needs: tuple[Path, ...]  # the keys of the nodes it needs, in the order declared
    external: bool = False  # not among the notebooks given: found beside the one that needs it

    @property
    def name(self) -> str:
        return self.notebook.stem

    @property
    def key(self) -> Path:
        return key(self.notebook.path)


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]  # in order: every node after the nodes it needs
    layers: tuple[tuple[Path, ...], ...]  # keys; a layer's nodes need only earlier layers' nodes

    @property
    def has_edges(self) -> bool:
        return any(n.needs for n in self.nodes)

    def node(self, path: Path) -> Node:
        wanted = key(path)
        return next(n for n in self.nodes if n.key == wanted)

    def upstream(self, path: Path) -> tuple[Node, ...]:
        """The nodes PATH needs directly."""
        return tuple(self.node(k) for k in self.node(path).needs)

    def ancestors(self, path: Path) -> set[Path]:
        """Keys of every node PATH needs, directly or through others."""
        seen: set[Path] = set()
        todo = list(self.node(path).needs)
        while todo:
            k = todo.pop()
            if k not in seen:
                seen.add(k)
                todo.extend(self.node(k).needs)
        return seen

    def descendants(self, path: Path) -> set[Path]:
        """Keys of every node that needs PATH, directly or through others."""
        wanted = key(path)
        return {n.key for n in self.nodes if wanted in self.ancestors(n.notebook.path)}


def build(notebooks: Sequence[Notebook],
          find: Callable[[Path], Notebook | None] | None = None) -> Graph:
    """The graph of NOTEBOOKS, checked. FIND loads a notebook that is needed but not given (by its
    path beside the notebook that needs it), or returns None; without FIND a need must be given."""
    given: dict[Path, Notebook] = {}
    for nb in notebooks:
        if key(nb.path) in given:
            raise NotebookError(f"{nb.path}: given twice to a pipeline",
                                hint="give each notebook of a pipeline once")
        given[key(nb.path)] = nb
    nodes: dict[Path, Node] = {}
    todo = [(nb, False) for nb in notebooks]
    while todo:
        nb, external = todo.pop(0)
        needs = []
        for name in declared_needs(nb):
            target = _resolve(nb, name, given, nodes, find)
            if target is None:
                raise NotebookError(
                    f"{nb.path}: needs '{name}', but no notebook named '{name}' is given or sits beside it",
                    hint=f"give {nb.path.parent / (name + '.ipynb')} to nbops too, or fix the name ({NEEDS_HINT})")
            needs.append(key(target.path))
            if key(target.path) not in given and key(target.path) not in nodes and \
                    all(key(t.path) != key(target.path) for t, _ in todo):
                todo.append((target, True))
        nodes[key(nb.path)] = Node(nb, tuple(needs), external)
    return _ordered(nodes)


def _resolve(nb: Notebook, name: str, given: dict[Path, Notebook], nodes: dict[Path, Node],
             find: Callable[[Path], Notebook | None] | None) -> Notebook | None:
    folder = key(nb.path).parent
    named = [g for g in given.values() if g.stem == name]
    here = [g for g in named if key(g.path).parent == folder]
    if here:
        return here[0]
    if len(named) > 1:
        paths = ", ".join(str(g.path) for g in named)
        raise NotebookError(f"{nb.path}: needs '{name}', but several notebooks given are named '{name}': {paths}",
                            hint="a need names a notebook in its own folder first; rename one of them")
    if named:
        return named[0]
    sibling = folder / f"{name}.ipynb"
    if sibling in nodes:
        return nodes[sibling].notebook
    return find(sibling) if find is not None and sibling.is_file() else None


def _ordered(nodes: dict[Path, Node]) -> Graph:
    """Kahn's layers, in the order the notebooks were given within a layer; a cycle is an error
    that names it (a -> b -> a)."""
    left = dict(nodes)
    done: set[Path] = set()
    layers: list[tuple[Path, ...]] = []
    while left:
        layer = tuple(k for k, n in left.items() if all(d in done for d in n.needs))
        if not layer:
            raise _cycle_error(left)
        layers.append(layer)
        done.update(layer)
        for k in layer:
            del left[k]
    order = tuple(nodes[k] for layer in layers for k in layer)
    return Graph(order, tuple(layers))


def _cycle_error(left: dict[Path, Node]) -> NotebookError:
    start = next(iter(left))
    path = [start]
    while True:  # every node left needs another node left: walk until one repeats
        nxt = next(d for d in left[path[-1]].needs if d in left)
        if nxt in path:
            cycle = path[path.index(nxt):] + [nxt]
            break
        path.append(nxt)
    first = left[cycle[0]]
    names = " -> ".join(left[k].name for k in cycle)
    return NotebookError(
        f"{first.notebook.path}: needs '{left[cycle[1]].name}', which leads back to it (a cycle: {names})",
        hint="a pipeline runs each notebook after the ones it needs: remove one of these needs "
             "from metadata.nbops.needs")


def names(nodes: Iterable[Node]) -> list[str]:
    return [n.name for n in nodes]
