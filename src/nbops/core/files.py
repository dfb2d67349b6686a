"""Files: table formats by extension, and writing whole or not at all (a temp file beside the
target, then one rename)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

# what the package ships beside its code: templates, CI files, the pre-commit config (symlinks
# to the repository's own copies in a source checkout, real files in a wheel)
SHIPPED = Path(__file__).resolve().parents[1] / "data"

# the table files `nbops predict` and `nbops monitor` read (and predict writes), by extension
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def writable_dir(path: Path, what: str) -> None:
    """PATH is, or can become, a folder nbops may write in: else a one-line ConfigError naming
    WHAT (the flag or setting), before anything was started or written."""
    from nbops.core.errors import ConfigError

    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder", hint="give a folder path")
    if existing is not None and (not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK)):
        raise ConfigError(f"{what} {path}: cannot write in {existing}", hint="give a folder you can write in")


def write_text_atomic(path: Path, text: str) -> None:
    """Write TEXT to PATH so that a reader sees the old file or the new one, never half of it;
    on any error (disk full, Ctrl-C) the temp file is removed and PATH is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; these are normal files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_notebook_atomic(path: Path, nb: dict) -> None:
    """A notebook as JSON the way JupyterLab and nbstripout write it (indent 1, sorted keys)."""
    write_text_atomic(path, json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def json_safe(value: Any) -> Any:
    """VALUE with every NaN or infinity replaced by None: JSON has no such numbers (Python's
    json module writes a bare `NaN`, which other parsers refuse)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def local_path(uri: str) -> Path | None:
    """The local file or folder a URI names (file:// or a plain absolute path), else None."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(unquote(parts.path))
    if not parts.scheme and uri.startswith("/"):
        return Path(uri)
    return None
