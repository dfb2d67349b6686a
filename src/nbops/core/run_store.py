"""Where `nbops run` writes its runs: plain-value calls (dicts and strings, no MLflow entities),
answered by MLflow's client (`ClientStore`) or, for the embedded store, by `SqliteWriter`
(core/sqlite_writer.py), which writes the same rows without `import mlflow`.

`open_store` picks the writer when it can (a local sqlite store of a schema revision it knows,
artifacts in a local folder) and MLflow's client otherwise; the writer hands anything it does not
do itself to the same `ClientStore`, opened on first need.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

MAX_PARAMS_PER_BATCH, MAX_METRICS_PER_BATCH = 100, 1000  # MLflow's limits per log_batch


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class ClientStore:
    """MLflow's client behind the calls the Tracker makes."""

    def __init__(self, client: Any):
        self.client = client

    def experiment_id(self, name: str, location: str | None) -> str:
        from nbops.core.errors import TrackingError, map_mlflow_errors

        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            with map_mlflow_errors(what=f"cannot create the experiment '{name}'"):
                return self.client.create_experiment(name, artifact_location=location)
        except TrackingError:  # created meanwhile by a concurrent run (AlreadyExists), or not
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def create_run(self, experiment_id: str, tags: dict[str, str], run_name: str, start_ms: int) -> str:
        return self.client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=run_name).info.run_id

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        for chunk in _chunks([Param(k, v) for k, v in params.items()], MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=chunk)

    def log_metrics(self, run_id: str, metrics: dict[str, float], timestamp_ms: int, step: int = 0) -> None:
        from mlflow.entities import Metric

        batch = [Metric(k, v, timestamp_ms, step) for k, v in metrics.items()]
        for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
            self.client.log_batch(run_id, metrics=chunk)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        for chunk in _chunks([RunTag(k, v) for k, v in tags.items()], MAX_PARAMS_PER_BATCH):
            self.client.log_batch(run_id, tags=chunk)

    def log_datasets(self, run_id: str, datasets: list[dict[str, str]], context: str) -> None:
        """DATASETS: name, digest, source_type, source (MLflow's Dataset fields)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag

        inputs = [DatasetInput(Dataset(**d), tags=[InputTag("mlflow.data.context", context)]) for d in datasets]
        self.client.log_inputs(run_id, datasets=inputs)

    def log_artifact(self, run_id: str, path: str, artifact_path: str) -> None:
        self.client.log_artifact(run_id, path, artifact_path)

    def log_dict(self, run_id: str, data: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, data, artifact_file)

    def set_terminated(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def running_runs(self) -> list[tuple[str, dict[str, str]]]:
        """RUNNING runs of the active experiments, with their tags (for the orphan check)."""
        from nbops.core.store import all_experiment_ids

        ids, found, token = all_experiment_ids(self.client), [], None
        while ids:
            page = self.client.search_runs(ids, filter_string="attributes.status = 'RUNNING'",
                                           max_results=1000, page_token=token)
            found += [(run.info.run_id, dict(run.data.tags)) for run in page]
            token = page.token
            if not token:
                break
        return found


class LazyClient:
    """Stands for MLflow's client (`orphans.open_client`), which it opens on first use, once,
    from any thread: passed where a client is expected, it costs nothing until one is needed."""

    def __init__(self, opener: Callable[[], Any]):
        self._opener, self._value, self._lock = opener, None, threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._value is None:
                self._value = self._opener()
            return self._value

    def _is_open(self) -> bool:
        return self._value is not None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_opener", "_value", "_lock"):  # copy, pickle, half-built
            raise AttributeError(name)
        return getattr(self._get(), name)


def open_store(uri: str, client: LazyClient) -> ClientStore | Any:
    """The embedded store's writer when it can take the runs, else MLflow's client (opened now)."""
    from nbops.core.registry_read import Unavailable
    from nbops.core.sqlite_writer import SqliteWriter

    if uri.startswith("sqlite:///"):
        try:
            return SqliteWriter(uri, lambda: ClientStore(client._get()))
        except Unavailable:
            pass
    return ClientStore(client._get())
