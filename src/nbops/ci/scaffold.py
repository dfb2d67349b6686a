"""`nbops templates` and `nbops new`: experiments made from template notebooks."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import NotebookError
from nbops.core.files import SHIPPED, write_notebook_atomic
from nbops.notebook import document as notebook_mod
from nbops.notebook.document import Notebook, cell_source
from nbops.notebook.params import resolve

PACKAGED = SHIPPED / "templates"


def template_dirs(settings: Settings) -> list[Path]:
    dirs = [settings.path(settings.templates_dir), PACKAGED]
    return [d for d in dirs if d.is_dir()]


def list_templates(settings: Settings) -> list[Notebook]:
    seen: dict[str, Notebook] = {}
    for d in template_dirs(settings):
        for path in sorted(d.glob("*.ipynb")):
            seen.setdefault(path.stem, notebook_mod.load(path))
    return list(seen.values())


def find_template(settings: Settings, name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".ipynb" and candidate.is_file():
        return candidate
    for d in template_dirs(settings):
        path = d / f"{candidate.stem}.ipynb"
        if path.is_file():
            return path
    known = ", ".join(t.stem for t in list_templates(settings)) or "none"
    raise NotebookError(f"no template named '{name}'", hint=f"templates: {known} (see `nbops templates`)")


def _literal(value: Any) -> str:
    """Python source for a value; strings in double quotes, as ruff's formatter writes them."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def rewrite_parameters(source: str, values: dict[str, Any]) -> str:
    """Replace the right-hand side of each top-level `name = ...` in the parameters cell."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    edits = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
            node.target if isinstance(node, ast.AnnAssign) and node.value is not None else None)
        if isinstance(target, ast.Name) and target.id in values:
            assert isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
            edits.append((node.value, _literal(values[target.id])))
    # apply bottom-up so earlier offsets stay valid
    for value, text in sorted(edits, key=lambda e: (e[0].lineno, e[0].col_offset), reverse=True):
        end_line, end_col = value.end_lineno or value.lineno, value.end_col_offset or 0  # set by ast.parse
        start, end = value.lineno - 1, end_line - 1
        head = lines[start][: value.col_offset]
        tail = lines[end][end_col:]
        lines[start : end + 1] = [head + text + tail]
    return "".join(lines)


def new_notebook(
    settings: Settings,
    template: str,
    name: str,
    overrides: dict[str, Any],
    force: bool = False,
) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][\w\-]*", name):
        raise NotebookError(f"bad notebook name {name!r}", hint="use letters, digits, '_' and '-'")
    src = find_template(settings, template)
    tpl = notebook_mod.load(src)
    typed = resolve(tpl, overrides)
    dest = settings.path(settings.notebooks_dir) / f"{name}.ipynb"
    if dest.exists() and not force:
        raise NotebookError(f"{dest} already exists", hint="pick another name or pass --force")
    nb = notebook_mod.read_json(src)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if "parameters" in (cell.get("metadata", {}).get("tags") or []) and typed:
            cell["source"] = rewrite_parameters(cell_source(cell), typed).splitlines(keepends=True)
    meta = nb.setdefault("metadata", {}).setdefault("nbops", {})
    meta["template"] = src.stem
    if isinstance(meta.get("model"), dict):
        meta["model"]["name"] = name.replace("_", "-")
    write_notebook_atomic(dest, nb)
    return dest
