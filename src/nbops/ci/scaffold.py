"""`nbops templates` and `nbops new`: experiments made from template notebooks."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import DataError, NotebookError
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


def list_pipelines(settings: Settings) -> list[tuple[str, list[Notebook]]]:
    """Pipeline templates: folders of notebooks (`templates/pipeline/`), upstream first."""
    from nbops.pipeline.graph import build

    seen: dict[str, list[Notebook]] = {}
    for d in template_dirs(settings):
        for folder in sorted(p for p in d.iterdir() if p.is_dir() and any(p.glob("*.ipynb"))):
            if folder.name not in seen:
                graph = build([notebook_mod.load(p) for p in sorted(folder.glob("*.ipynb"))])
                seen[folder.name] = [n.notebook for n in graph.nodes]
    return list(seen.items())


def find_template(settings: Settings, name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix == ".ipynb" and candidate.is_file():
        return candidate
    for d in template_dirs(settings):
        path = d / f"{candidate.stem}.ipynb"
        if path.is_file():
            return path
        if (d / candidate.stem).is_dir() and any((d / candidate.stem).glob("*.ipynb")):
            return d / candidate.stem  # a pipeline: a folder of notebooks that need each other
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


def _csv_columns(path: Path, shown: str) -> list[str]:
    """The header row of the CSV file PATH (SHOWN in errors). Its text is never quoted in an
    error: --data may name any file the user can read (a link to /etc/passwd printed its first
    line), and an error names the path only."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            first = f.readline(1 << 20)  # one line, and not a whole file that has no newline
        return next(csv.reader([first]), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{shown}: cannot read its header as UTF-8 CSV ({type(exc).__name__})") from None


def data_parameters(settings: Settings, tpl: Notebook, data: str, overrides: dict[str, Any]) -> tuple[str, dict]:
    """(the data file relative to the project root, the parameters that make TPL read it).

    DATA is relative to the project root (or absolute, inside the project); a relative path that only exists from
    the notebooks folder (as the kernel reads `data_path`) is accepted too. The notebook's
    `data_path` is written relative to the notebooks folder, where its kernel runs, and its
    `dataset` becomes the file's stem; with a `target` parameter, a CSV file must have that column.
    """
    names = {p.name for p in tpl.parameters}
    if "data_path" not in names:
        raise NotebookError(f"{tpl.path}: template has no `data_path` parameter to read {data}",
                            hint="--data works with templates that read a data file (see `nbops templates`)")
    root, notebooks = settings.root.resolve(), settings.path(settings.notebooks_dir).resolve()
    given = Path(data).expanduser()
    path = given if given.is_absolute() else root / given
    legacy = Path(os.path.normpath(notebooks / given))
    if not path.is_file() and not given.is_absolute() and legacy.is_file():
        path = legacy
    if not path.is_file():
        raise DataError(f"data file {data} not found" + ("" if given.is_absolute() else f" under {root}"),
                        hint="--data and data_path are relative to the project root")
    path = Path(os.path.normpath(path))
    if not path.is_relative_to(root):  # `nbops run` refuses a declared data file outside the project
        raise DataError(f"data file {data} is outside the project {root}",
                        hint="copy it (or link it) under the project root, e.g. into data/")
    declared = path.relative_to(root).as_posix()
    values: dict[str, Any] = {"data_path": Path(os.path.relpath(path, notebooks)).as_posix()}
    if "dataset" in names and "dataset" not in overrides:
        values["dataset"] = path.stem
    target = next((p.default for p in tpl.parameters if p.name == "target"), None)
    target = overrides.get("target", target)
    if isinstance(target, str) and path.suffix.lower() == ".csv":
        columns = _csv_columns(path, declared)
        if target not in columns:
            raise DataError(f"{declared}: no target column {target!r} in its header ({len(columns)} columns)",
                            hint=f"name the column to predict {target!r}, or pass -p target=COLUMN")
        twice = next((i for i, c in enumerate(columns) if c in columns[:i]), None)
        if twice is not None:  # pandas would call the second one `NAME.1`, silently
            raise DataError(f"{declared}: column {columns[twice]!r} appears more than once in its header",
                            hint="give each column its own name")
        share = overrides.get("validation_size", next(
            (p.default for p in tpl.parameters if p.name == "validation_size"), 0.25))
        _check_trainable(path, declared, columns.index(target), share)
    return declared, values


def _check_trainable(path: Path, shown: str, target: int, share: Any) -> None:
    """Refuse a CSV too small for a stratified train/validation split (what `kit.split` does):
    at least two classes, two rows of each, and room for every class on both sides. Class values
    are never quoted (see `_csv_columns`)."""
    import math

    counts: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            next(rows, None)
            for row in rows:
                if row and target < len(row):
                    counts[row[target]] = counts.get(row[target], 0) + 1
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{shown}: cannot read it as UTF-8 CSV ({type(exc).__name__})") from None
    n, classes = sum(counts.values()), len(counts)
    share = share if isinstance(share, float) and 0 < share < 1 else 0.25
    held = math.ceil(share * n)
    hint = "a classifier needs rows of at least two classes, two or more of each; add rows"
    if classes < 2:
        what = "no rows" if n == 0 else f"{n} row(s), all of one class in the target column"
        raise DataError(f"{shown}: {what}: nothing to learn to tell apart", hint=hint)
    if min(counts.values()) < 2 or held < classes or n - held < classes:
        raise DataError(f"{shown}: {n} row(s) of {classes} classes are too few for a stratified "
                        f"split holding out {share:g} of them", hint=hint + " (or change -p validation_size)")



def new_notebook(
    settings: Settings,
    template: str,
    name: str,
    overrides: dict[str, Any],
    force: bool = False,
    data: str | None = None,
) -> Path:
    """notebooks/NAME.ipynb from TEMPLATE with OVERRIDES as defaults; DATA (or a `data_path`
    override), relative to the project root, is checked, declared in metadata.nbops.data and
    set as the notebook's `data_path` (see `data_parameters`)."""
    if not re.fullmatch(r"[A-Za-z0-9][\w\-]*", name):
        raise NotebookError(f"bad notebook name {name!r}", hint="use letters, digits, '_' and '-'")
    src = find_template(settings, template)
    if src.is_dir():
        return new_pipeline(settings, src, name, overrides, force)
    tpl = notebook_mod.load(src)
    overrides = dict(overrides)
    if data is not None and overrides.get("data_path") not in (None, data):
        raise NotebookError("--data and -p data_path= name different files", hint="give one of them")
    data = data if data is not None else overrides.pop("data_path", None) or None
    declared = None
    if data is not None:
        declared, values = data_parameters(settings, tpl, str(data), overrides)
        overrides.pop("data_path", None)
        overrides = {**values, **overrides}
    typed = resolve(tpl, overrides)
    dest = settings.path(settings.notebooks_dir) / f"{name}.ipynb"
    if dest.exists() and not force:
        raise NotebookError(f"{dest} already exists", hint="pick another name or pass --force")
    nb = _fresh_copy(src, typed)
    meta = nb.setdefault("metadata", {}).setdefault("nbops", {})
    meta["template"] = src.stem
    if declared is not None:
        meta["data"] = [*[d for d in meta.get("data") or [] if d != declared], declared]
    if isinstance(meta.get("model"), dict):
        meta["model"]["name"] = name.replace("_", "-")
    write_notebook_atomic(dest, nb)
    return dest


def _fresh_copy(src: Path, values: dict[str, Any]) -> dict:
    """Template SRC as a new notebook: no outputs or execution counts, the parameters cell
    rewritten with VALUES (the template's own defaults where VALUES is empty)."""
    nb = notebook_mod.read_json(src)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if "parameters" in (cell.get("metadata", {}).get("tags") or []) and values:
            cell["source"] = rewrite_parameters(cell_source(cell), values).splitlines(keepends=True)
    return nb


def new_pipeline(settings: Settings, src: Path, name: str, overrides: dict[str, Any], force: bool) -> Path:
    """notebooks/NAME/ from the pipeline template folder SRC: each of its notebooks, its `needs`
    kept; `-p` values set where a notebook has that parameter (a name none has is an error)."""
    parts = sorted(src.glob("*.ipynb"))
    tpls = [notebook_mod.load(p) for p in parts]
    unknown = [k for k in overrides if not any(t.parameter(k) for t in tpls)]
    if unknown:
        raise NotebookError(f"{src}: no notebook of the pipeline has a parameter '{unknown[0]}'",
                            hint="see `nbops templates` for each notebook's parameters")
    dest = settings.path(settings.notebooks_dir) / name
    if dest.exists() and not force:
        raise NotebookError(f"{dest} already exists", hint="pick another name or pass --force")
    typed = [resolve(t, {k: v for k, v in overrides.items() if t.parameter(k)}) for t in tpls]
    for path, values in zip(parts, typed, strict=True):
        nb = _fresh_copy(path, values)
        meta = nb.setdefault("metadata", {}).setdefault("nbops", {})
        meta["template"] = f"{src.name}/{path.stem}"
        if isinstance(meta.get("model"), dict):
            meta["model"]["name"] = f"{name}-{path.stem}".replace("_", "-")
        write_notebook_atomic(dest / path.name, nb)
    return dest
