"""Where a notebook executes: in this process's threads (local) or as Ray tasks.

An executor takes a RunSpec and the environment nbops adds for the kernel (tracking variables,
the project's src/ on PYTHONPATH) and returns a RunResult. The local executor merges that over
this process's environment; a Ray task merges it over the worker's, so Ray's per-task
CUDA_VISIBLE_DEVICES survives. Tracking always stays on the driver.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from nbops.core.errors import ExecutionError, first_line
from nbops.run.engine import CellError, RunResult, execute
from nbops.run.spec import RunSpec


def local_execute(spec: RunSpec, extra_env: dict[str, str], debug: bool = False, on_cell=None,
                  late_env=None) -> RunResult:
    return execute(spec, env={**os.environ, **extra_env}, debug=debug, on_cell=on_cell, late_env=late_env)


def _ray_task(spec: RunSpec, source: bytes, extra_env: dict[str, str], debug: bool):
    """Runs on a Ray worker: the notebook from the driver's bytes when the worker does not have
    the file, the executed notebook and kernel log sent back as bytes."""
    from nbops.run.engine import execute as run_here

    with tempfile.TemporaryDirectory(prefix="nbops-ray-") as tmp:
        path = spec.notebook.path
        if not path.is_file():  # another machine: a copy, in a folder of the same name
            path = Path(tmp) / "src" / path.name
            path.parent.mkdir(parents=True)
            path.write_bytes(source)
        worker_spec = replace(spec, notebook=replace(spec.notebook, path=path),
                              output_path=Path(tmp) / "out" / spec.output_path.name)
        result = run_here(worker_spec, env={**os.environ, **extra_env}, debug=debug)
        executed = result.output_path.read_bytes() if result.output_path.exists() else b""
        log = result.kernel_log.read_bytes() if result.kernel_log and result.kernel_log.exists() else b""
        return result.status, result.duration, result.error, result.records, executed, log, \
            os.environ.get("CUDA_VISIBLE_DEVICES", "")


class RayExecutor:
    """Each notebook a Ray task asking for the notebook's CPUs and GPUs."""

    def __init__(self, address: str | None = None):
        try:
            import ray
        except ImportError as exc:
            raise ExecutionError("--executor ray needs Ray installed", ename=type(exc).__name__,
                                 evalue=str(exc), hint="pip install 'nbops[ray]'") from None
        self.ray = ray
        self.address = address or "a new local cluster"
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=False)
            except ConnectionError as exc:
                raise ExecutionError(f"cannot reach the Ray cluster at {address}: {exc}",
                                     ename=type(exc).__name__, evalue=str(exc),
                                     hint="start one with `ray start --head` or check --ray-address") from None
        self.task = ray.remote(_ray_task)

    def check(self, specs: list[RunSpec]) -> None:
        """A notebook asking for more GPUs than the whole cluster has would wait forever."""
        have = int(self.ray.cluster_resources().get("GPU", 0))
        for spec in specs:
            need = spec.notebook.resources.gpu
            if need > have:
                raise ExecutionError(
                    f"{spec.notebook.path} asks for {need} GPU(s), but the Ray cluster at "
                    f"{self.address} has {have}", path=str(spec.notebook.path),
                    hint="add a GPU node to the cluster, or run it with the local executor",
                )

    def __call__(self, spec: RunSpec, extra_env: dict[str, str], debug: bool = False, on_cell=None) -> RunResult:
        resources = spec.notebook.resources
        ref = self.task.options(num_cpus=resources.cpu, num_gpus=resources.gpu).remote(
            spec, spec.notebook.path.read_bytes(), extra_env, debug)
        try:
            status, duration, error, records, executed, log, _devices = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # worker crash, out of memory, lost node
            first = first_line(exc)
            return RunResult(spec=spec, status="failed", output_path=spec.output_path, duration=0.0,
                             error=CellError(None, type(exc).__name__, first[:300]))
        spec.output_path.parent.mkdir(parents=True, exist_ok=True)
        if executed:
            spec.output_path.write_bytes(executed)
        kernel_log = None
        if log:
            kernel_log = spec.output_path.with_suffix(".kernel.log")
            kernel_log.write_bytes(log)
        return RunResult(spec=spec, status=status, output_path=spec.output_path, duration=duration,
                         error=error, records=records, kernel_log=kernel_log)
