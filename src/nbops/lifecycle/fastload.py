"""A registered scikit-learn model loaded without `import mlflow` (~2.3 s of a `predict` or a
`serve` start-up), where its artifacts are on local disk.

It does what `mlflow.sklearn.load_model` does for such a model, by MLflow's own rules: the
version's logged model (`models:/<model id>`) found through the registry's fast reader, its
MLmodel file's `sklearn` flavor, the serialization format it names (skops with the model's
trusted types, pickle, cloudpickle), MLFLOW_ALLOW_PICKLE_DESERIALIZATION honoured (`_allowed`).
Anything else (another flavor, code paths, artifacts behind a server or in S3, a signature that
is not plain named columns, an MLflow nbops was not tested against: core/mlflow_db.py) returns
None and `models.load` asks MLflow.

Why not MLflow's documented `mlflow.sklearn.load_model`: it imports mlflow, the very cost this
module exists to avoid. So the one rule here that guards safety, MLflow's pickle guard, is fenced:
it takes the fast path only where MLflow's own guard certainly allows loading, and leaves every
other value to MLflow, which refuses (or allows, on Databricks) in its words.
tests/integration/test_mlflow_db_fallback.py checks `_allowed` against MLflow's own
`MLFLOW_ALLOW_PICKLE_DESERIALIZATION.get()` value by value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nbops.core.files import local_path
from nbops.core.mlflow_db import fell_back, mlflow_supported
from nbops.core.registry_read import Unavailable, fast_reader
from nbops.lifecycle.versions import VersionInfo

# the signature types `models.Column` takes as they are (MLflow's DataType names)
_PLAIN_TYPES = {"double", "float", "long", "integer", "boolean", "string", "binary", "datetime"}
_FORMATS = ("skops", "pickle", "cloudpickle")


def model_dir(version: VersionInfo) -> Path | None:
    """The local folder holding VERSION's MLmodel file, or None."""
    source = version.source
    if source.startswith("models:/m-") and "/" not in source[len("models:/"):]:
        reader = fast_reader(version.store_uri)
        if reader is None:
            return None
        try:
            location = reader.artifact_location(source[len("models:/"):])
        except Unavailable:
            return None
        folder = local_path(location) if location else None
    else:
        folder = local_path(source)
    return folder if folder is not None and (folder / "MLmodel").is_file() else None


def _allowed() -> bool:
    """Whether MLflow's pickle guard certainly lets this model load (MLflow 3.17's
    `mlflow.sklearn._load_model_from_local_file`: MLFLOW_ALLOW_PICKLE_DESERIALIZATION, a boolean
    variable, true when unset; "true" or "1" in any case; any other value is "false", "0", or an
    error). A SAFETY FENCE: only unset, "true" and "1" load here; everything else, and any
    exception MLflow makes (its Databricks runtimes), goes to MLflow, which refuses in its words.
    Never widen this without MLflow's rule and the test beside it."""
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    return value is None or value.lower() in ("true", "1")


def columns_of(meta: dict) -> tuple | None:
    """The signature's named columns as `models.Column`s; () with no signature; None for a
    signature this loader leaves to MLflow (tensors, nested types, unnamed columns)."""
    import json

    from nbops.lifecycle.models import Column

    signature = meta.get("signature") or {}
    if not signature.get("inputs"):
        return ()
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        return None
    cols = []
    for spec in inputs if isinstance(inputs, list) else ():
        kind, name = spec.get("type"), spec.get("name")
        if kind not in _PLAIN_TYPES or not isinstance(name, str) or not name:
            return None
        cols.append(Column(name, kind, required=bool(spec.get("required", True))))
    return tuple(cols) or None


def load_sklearn(version: VersionInfo) -> tuple[Any, tuple] | None:
    """(the scikit-learn model, its input columns) loaded as MLflow would, or None."""
    why = mlflow_supported()
    if why:
        fell_back("loading models", why)  # the MLmodel format is MLflow's too: said once
        return None
    folder = model_dir(version)
    if folder is None or not _allowed():
        return None
    import yaml

    try:
        meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    conf = (meta.get("flavors") or {}).get("sklearn")
    if not isinstance(conf, dict) or conf.get("code") or not conf.get("pickled_model"):
        return None
    fmt = conf.get("serialization_format", "pickle")
    columns = columns_of(meta)
    path = folder / conf["pickled_model"]
    if fmt not in _FORMATS or columns is None or not path.is_file():
        return None
    if fmt == "skops":
        import skops.io

        return skops.io.load(path, trusted=conf.get("skops_trusted_types")), columns
    with path.open("rb") as f:
        if fmt == "pickle":
            import pickle

            return pickle.load(f), columns  # noqa: S301 - MLflow's own rule, allowed above
        import cloudpickle

        return cloudpickle.load(f), columns
