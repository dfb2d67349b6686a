"""Every notebook's input checked before the first kernel starts or the first MLflow run is
created: the notebooks load, the output folder is writable, each kernel is installed, each
model name is one MLflow accepts. What passes is a list of RunSpecs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import ExecutionError, NotebookError
from nbops.core.files import writable_dir
from nbops.notebook import document as notebook_mod
from nbops.notebook.model_name import validate_model_name
from nbops.run.spec import RunSpec, make_spec


def plan_runs(
    settings: Settings,
    paths: list[str | Path],
    overrides: dict[str, Any],
    timeout: float | None = None,
    cell_timeout: float | None = None,
    log_output: bool = False,
) -> list[RunSpec]:
    """The RunSpecs of the notebooks at PATHS (OVERRIDES: their parameters), every input checked."""
    if not paths:
        raise NotebookError("no notebooks given", hint="e.g. nbops run notebooks/*.ipynb")
    writable_dir(settings.path(settings.runs_dir), "--output-dir")  # before any run is created
    notebooks = [notebook_mod.load(p) for p in paths]
    specs = [make_spec(settings, nb, overrides, timeout, cell_timeout, log_output) for nb in notebooks]
    check_kernels(specs, chosen_by=_kernel_source(settings))
    for spec in specs:  # a name MLflow will refuse is found now, not after the run
        model = spec.notebook.model
        problem = validate_model_name(model.name) if model else None
        if model and problem:
            raise NotebookError(f"{spec.notebook.path}: metadata.nbops.model.name {model.name!r} {problem}",
                                hint="MLflow registers names of letters, digits, '-', '_' and '.'")
    return specs


def _kernel_source(settings: Settings) -> str:
    """Who chose the kernel instead of the notebooks' kernelspec ("" when nobody did)."""
    if not settings.kernel_name:
        return ""
    source = settings.sources.get("kernel_name", "")
    return {"flag": "--kernel", "pyproject.toml": "[tool.nbops] kernel_name"}.get(source, source)


def check_kernels(specs: list[RunSpec], chosen_by: str = "") -> None:
    """Every kernel installed, before anything runs. CHOSEN_BY: --kernel (or the setting) that
    replaced the notebooks' own kernelspec, named in the error instead of the notebook."""
    from jupyter_client.kernelspec import KernelSpecManager

    known = KernelSpecManager().find_kernel_specs()
    known.setdefault("python3", "")  # jupyter_client always provides the running Python
    for spec in specs:
        if spec.kernel_name not in known:
            installed = ", ".join(sorted(known))
            if chosen_by:
                raise ExecutionError(f"{chosen_by}: no Jupyter kernel named '{spec.kernel_name}'",
                                     path=str(spec.notebook.path), ename="NoSuchKernel",
                                     evalue=spec.kernel_name, hint=f"installed kernels: {installed}")
            raise ExecutionError(
                f"{spec.notebook.path}: no Jupyter kernel named '{spec.kernel_name}'",
                path=str(spec.notebook.path), ename="NoSuchKernel", evalue=spec.kernel_name,
                hint=f"installed kernels: {installed}; set metadata.kernelspec.name or pass --kernel NAME",
            )
