"""Files: table formats by extension, and writing whole or not at all (a temp file beside the
target, then one rename)."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def umask() -> int:
    """The process's umask, read without changing it: os.umask() can only be read by setting it,
    and for that moment every file another thread (a parallel run) creates would get mode 0666."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (macOS): set and restore at once
    os.umask(mask)
    return mask


def final_mode(path: Path) -> int:
    """The mode PATH has once rewritten: its own when it exists (a merge or the strip filter
    keeps a notebook's mode), else a normal new file's, 0666 less the umask (not mkstemp's 0600:
    an executed notebook or a prediction is read by the team)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~umask()


def temp_beside(path: Path) -> str:
    """A new empty temp file in PATH's folder, with PATH's final mode: written, then moved onto
    PATH with os.replace (one rename: a reader sees the old file or the new one). The caller
    removes it on failure; `replacing` does all of that for one file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, final_mode(path))
    finally:
        os.close(fd)
    return tmp


@contextmanager
def replacing(path: Path) -> Iterator[str]:
    """The one way nbops writes a file whole or not at all: the block writes the temp file it is
    given (beside PATH, PATH's final mode), which then replaces PATH; on any error (disk full,
    Ctrl-C) the temp file is removed and PATH is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write TEXT to PATH whole or not at all (`replacing`)."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


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
