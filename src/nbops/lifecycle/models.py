"""Load a registered model version for prediction, and check input against its signature.

`serve.py` and `predict.py` share this. A scikit-learn model is loaded with its own flavor and
called directly (MLflow's pyfunc wrapper re-checks the schema through pandas on every call,
which costs more than the prediction on small requests); any other flavor goes through pyfunc.
The input columns come from the model's signature; nbops checks them itself, once, with
messages that name the column.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nbops.core.errors import ModelError, first_line
from nbops.core.store import mask_uri, use_store
from nbops.lifecycle.registry import VersionInfo

# MLflow signature types -> the numpy dtype kind a column must have (or be cast to)
_NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # MLflow's type name: double, float, long, integer, boolean, string, ...
    required: bool = True


class InputError(ValueError):
    """A payload or file that does not fit the model's signature; the message names the field."""


@dataclass
class LoadedModel:
    version: VersionInfo
    columns: tuple[Column, ...]  # empty when the model has no column signature
    flavor: str
    predictor: Any  # the native model (sklearn) or a pyfunc model

    @property
    def label(self) -> str:
        return f"{self.version.name}/{self.version.version}"

    def frame(self, data) -> Any:
        """A DataFrame of DATA (a DataFrame or a dict of column -> list) with the signature's
        columns, in order and of its types. Raises InputError naming the first bad column."""
        import pandas as pd

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        repeated = frame.columns[frame.columns.duplicated()]
        if len(repeated):
            raise InputError(f"column '{repeated[0]}' appears more than once")
        if not self.columns:
            return frame
        missing = [c.name for c in self.columns if c.required and c.name not in frame.columns]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(f"missing column '{missing[0]}'{more}; the model expects "
                             f"{', '.join(c.name for c in self.columns)}")
        out = {}
        for col in self.columns:
            if col.name not in frame.columns:
                continue
            values = frame[col.name]
            dtype = _NUMERIC.get(col.kind)
            if dtype:
                if values.dtype.kind not in "iufb":
                    converted = pd.to_numeric(values, errors="coerce")
                    bad = converted.isna() & values.notna()
                    if bad.any():
                        first = values[bad].iloc[0]
                        raise InputError(f"column '{col.name}' must be {col.kind}, got {first!r}")
                    values = converted
                if values.isna().any() and dtype.startswith("int"):
                    raise InputError(f"column '{col.name}' must be {col.kind}, got a missing value")
                if values.dtype != dtype:
                    values = values.astype(dtype)
            out[col.name] = values
        return pd.DataFrame(out, index=frame.index)

    def predict(self, frame) -> Any:
        """Predictions for a frame already checked by `frame`, as a numpy array or DataFrame."""
        return self.predictor.predict(frame)


def _columns(meta) -> tuple[Column, ...]:
    sig = getattr(meta, "signature", None)
    if sig is None or sig.inputs is None:
        return ()
    try:
        names = sig.inputs.input_names()
    except Exception:  # noqa: BLE001 - a tensor signature has no column names
        return ()
    if not names or any(not isinstance(n, str) for n in names):
        return ()
    cols = []
    for spec in sig.inputs.inputs:
        kind = getattr(getattr(spec, "type", None), "name", None) or str(getattr(spec, "type", ""))
        cols.append(Column(spec.name, str(kind).lower(), required=getattr(spec, "required", True)))
    return tuple(cols)


def load(version: VersionInfo) -> LoadedModel:
    """Load VERSION from the registry (its artifacts are downloaded once into MLflow's cache)."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    use_store(version.store_uri)
    uri = version.uri
    try:
        meta = Model.load(uri)
        if "sklearn" in meta.flavors:
            import mlflow.sklearn

            predictor, flavor = mlflow.sklearn.load_model(uri), "sklearn"
        else:
            predictor, flavor = mlflow.pyfunc.load_model(uri), "pyfunc"
    except (MlflowException, OSError) as exc:
        raise ModelError(f"cannot load {uri}: {mask_uri(first_line(exc))}",
                         hint="are the artifacts of its run still where MLflow stored them?") from None
    return LoadedModel(version, _columns(meta), flavor, predictor)


def input_columns(version: VersionInfo) -> tuple[Column, ...]:
    """VERSION's signature columns, read from its MLmodel file alone: no model is loaded
    (loading a scikit-learn model through skops costs seconds of imports)."""
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    use_store(version.store_uri)
    try:
        return _columns(Model.load(version.uri))
    except (MlflowException, OSError) as exc:
        raise ModelError(f"cannot read {version.uri}: {mask_uri(first_line(exc))}",
                         hint="are the artifacts of its run still where MLflow stored them?") from None
