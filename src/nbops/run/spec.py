"""From notebooks and parameter overrides to :class:`RunSpec` values, checked before anything runs."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.context import relative_to_repo
from nbops.core.errors import NotebookError
from nbops.core.secrets import masked, secret_names
from nbops.notebook import params as params_mod
from nbops.notebook.document import Notebook
from nbops.notebook.inputs import (
    duplicated_column,
    file_digest,
    inputs_fingerprint,
    src_dependencies,
)


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
    inputs: dict[str, str] = field(default_factory=dict)  # repo path -> sha256: src modules, data
    secrets: tuple[str, ...] = ()  # parameters never stored (MLflow, saved notebooks): core/secrets.py
    language: str = ""  # for papermill's parameters cell: the notebook's, else the kernel's
    note: str = ""  # a one-line note for the user before the run (no kernelspec: python3 used)
    log_output: bool = False  # stream cell stdout/stderr to the terminal (papermill's log_output)
    label: str = ""  # prefix of those streamed lines when several notebooks run at once
    # a pipeline's notebook: (name, MLflow run id) of each notebook it needs, for kit.upstream()
    upstream: tuple[tuple[str, str], ...] = ()

    @property
    def logged_values(self) -> dict[str, Any]:
        """VALUES as they may be stored: secrets masked."""
        return masked(self.values, self.secrets)


def input_files(settings: Settings, notebook: Notebook, data_files: list[Path]) -> dict[str, str]:
    """Repo-relative path -> SHA-256 of every src/ module the notebook imports and every data file."""
    src = settings.path(settings.src_dir)
    files = [*src_dependencies(list(notebook.code), src), *data_files]
    return {relative_to_repo(p, settings.root): file_digest(p) for p in files}


def kernel_language(kernel_name: str) -> str:
    """The language of an installed kernel ("" when it is not installed)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(kernel_name).language or ""
    except NoSuchKernel:
        return ""


def output_path_for(settings: Settings, notebook: Notebook) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return settings.path(settings.runs_dir) / notebook.stem / f"{stamp}-{uuid.uuid4().hex[:6]}.ipynb"


def make_spec(
    settings: Settings,
    notebook: Notebook,
    raw_overrides: dict[str, Any],
    timeout: float | None = None,
    cell_timeout: float | None = None,
    log_output: bool = False,
) -> RunSpec:
    typed = params_mod.resolve(notebook, raw_overrides)
    values = params_mod.values_used(notebook, typed)
    data_files = []
    for rel in notebook.data:
        path = settings.path(rel)
        if not Path(os.path.normpath(path)).is_relative_to(os.path.normpath(settings.root)):  # lexically: links ok
            raise NotebookError(
                f"{notebook.path}: data file '{rel}' in metadata.nbops.data is outside the project",
                hint=f"data files live under the project root {settings.root} (a link inside it is fine)",
            )
        if not path.is_file():
            raise NotebookError(
                f"{notebook.path}: data file '{rel}' declared in metadata.nbops.data does not exist",
                hint=f"paths are relative to the project root {settings.root}",
            )
        try:
            column = duplicated_column(path) if path.suffix.lower() == ".csv" else None
        except OSError as exc:
            raise NotebookError(f"{notebook.path}: data file '{rel}' cannot be read: {exc.strerror or exc}",
                                hint="check the file's permissions") from None
        if column is not None:
            raise NotebookError(
                f"{notebook.path}: data file '{rel}': column {column!r} appears more than once in the header",
                hint="give each column its own name (pandas would read the second as "
                     f"'{column}.1', a column no other file has)",
            )
        data_files.append(path)
    inputs = input_files(settings, notebook, data_files)
    total = timeout or notebook.timeout or settings.timeout or None
    per_cell = cell_timeout if cell_timeout is not None else (settings.cell_timeout or None)
    kernel = settings.kernel_name or notebook.kernel_name
    note = ""
    if not notebook.has_kernelspec and not settings.kernel_name:
        note = f"{notebook.path} has no metadata.kernelspec: running it on the Python kernel '{kernel}'"
    return RunSpec(
        notebook=notebook,
        overrides=typed,
        values=values,
        output_path=output_path_for(settings, notebook),
        timeout=total,
        cell_timeout=per_cell or None,
        kernel_name=kernel,
        fingerprint=inputs_fingerprint(notebook.fingerprint, values, inputs),
        data_files=tuple(data_files),
        start_timeout=settings.start_timeout,
        inputs=inputs,
        secrets=secret_names(values, settings.secret_param_names),
        language=(notebook.language if not settings.kernel_name else "") or kernel_language(kernel),
        note=note,
        log_output=log_output,
    )
