"""From notebooks and parameter overrides to :class:`RunSpec` values, checked before anything runs."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import params as params_mod
from .config import Settings
from .errors import NotebookError
from .notebook import Notebook


@dataclass(frozen=True)
class RunSpec:
    notebook: Notebook
    overrides: dict[str, Any]  # typed values given on the command line or in a file
    values: dict[str, Any]  # every parameter's value in this run
    output_path: Path
    timeout: float | None  # whole notebook, seconds
    cell_timeout: float | None  # one cell, seconds
    kernel_name: str
    fingerprint: str
    data_files: tuple[Path, ...] = field(default=())
    start_timeout: float = 60.0  # seconds for the kernel to start


def run_fingerprint(notebook: Notebook, values: dict[str, Any]) -> str:
    h = hashlib.sha256(notebook.fingerprint.encode())
    h.update(json.dumps(values, sort_keys=True, default=str).encode())
    return h.hexdigest()


def output_path_for(settings: Settings, notebook: Notebook) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return settings.path(settings.runs_dir) / notebook.stem / f"{stamp}-{uuid.uuid4().hex[:6]}.ipynb"


def make_spec(
    settings: Settings,
    notebook: Notebook,
    raw_overrides: dict[str, Any],
    timeout: float | None = None,
    cell_timeout: float | None = None,
) -> RunSpec:
    typed = params_mod.resolve(notebook, raw_overrides)
    values = params_mod.values_used(notebook, typed)
    data_files = []
    for rel in notebook.data:
        path = settings.path(rel)
        if not path.is_file():
            raise NotebookError(
                f"{notebook.path}: data file '{rel}' declared in metadata.nbops.data does not exist",
                hint=f"paths are relative to the project root {settings.root}",
            )
        data_files.append(path)
    total = timeout or notebook.timeout or settings.timeout or None
    per_cell = cell_timeout if cell_timeout is not None else (settings.cell_timeout or None)
    return RunSpec(
        notebook=notebook,
        overrides=typed,
        values=values,
        output_path=output_path_for(settings, notebook),
        timeout=total,
        cell_timeout=per_cell or None,
        kernel_name=settings.kernel_name or notebook.kernel_name,
        fingerprint=run_fingerprint(notebook, values),
        data_files=tuple(data_files),
        start_timeout=settings.start_timeout,
    )
