"""What a notebook's result depends on besides its own source: the modules under `src/` it
imports (directly or through other `src/` modules) and the data files it declares.

Both feed the run fingerprint (so an unchanged input set is recognised as already run) and
`nbops plan` (so a change to `src/features.py` re-runs exactly the notebooks that import it).
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path


def python_source(source: str) -> str:
    """Cell source with IPython magics and shell escapes blanked (ast cannot parse them)."""
    return "\n".join("" if line.lstrip().startswith(("%", "!", "?")) else line
                     for line in source.splitlines())


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def duplicated_column(csv_path: str | Path) -> str | None:
    """The first column a CSV file's header names twice, else None. pandas would rename the
    second `NAME.1` silently, and a model trained on it would expect a column no file has."""
    import csv

    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as f:
        header = next(csv.reader([f.readline(1 << 20)]), [])
    seen: set[str] = set()
    for column in header:
        if column in seen:
            return column
        seen.add(column)
    return None


def _imported_names(tree: ast.AST, package: str = "") -> set[str]:
    """Dotted module names an AST imports; `package` resolves relative imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*parts, node.module or ""] if p)
            else:
                base = node.module or ""
            if base:
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _resolve(name: str, src: Path) -> list[Path]:
    """Files under src/ that importing `name` executes: each package's __init__ and the module."""
    parts = name.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        base = src.joinpath(*parts[:i])
        if (base / "__init__.py").is_file():
            files.append(base / "__init__.py")
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
            break
        else:
            break
    return files


def src_dependencies(code: list[str], src: Path) -> list[Path]:
    """Every file under `src` that the given notebook code imports, transitively, sorted."""
    if not src.is_dir():
        return []
    names: set[str] = set()
    for source in code:
        try:
            names |= _imported_names(ast.parse(python_source(source)))
        except SyntaxError:
            continue
    seen: set[Path] = set()
    queue = [f for n in sorted(names) for f in _resolve(n, src)]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        package = ".".join(parts[:-1] if parts[-1] != "__init__" else parts[:-1])
        if path.name == "__init__.py":
            package = ".".join(parts[:-1])
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for name in _imported_names(tree, package):
            queue.extend(_resolve(name, src))
    return sorted(seen)


def inputs_fingerprint(notebook_fingerprint: str, values: dict, files: dict[str, str]) -> str:
    """SHA-256 over the notebook's stripped source, parameter values and input file digests."""
    h = hashlib.sha256(notebook_fingerprint.encode())
    h.update(json.dumps(values, sort_keys=True, default=str).encode())
    h.update(json.dumps(files, sort_keys=True).encode())
    return h.hexdigest()
