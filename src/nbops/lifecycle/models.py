"""Load a registered model version for prediction, and check input against its signature.

`serve.py` and `predict.py` share this. A scikit-learn model is loaded with its own flavor and
called directly (MLflow's pyfunc wrapper re-checks the schema through pandas on every call,
which costs more than the prediction on small requests); any other flavor goes through pyfunc.
The input columns come from the model's signature; nbops checks them itself, once, with
messages that name the column.

A model with a tensor signature (a PyTorch module: one unnamed tensor of shape (-1, N)) reads a
table too: its N columns are the feature names `kit.log_torch_model` keeps in the MLmodel's
metadata (`nbops.features`), typed as the tensor; without them any N columns are taken in order.
Such a model is called with a matrix of the tensor's dtype.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Any

# InputError: a payload or file that does not fit the model's signature (the message names the
# field); it lives in the tree (core/errors.py) and is imported from here by serve and predict
from nbops.core.errors import InputError, ModelError, first_line, map_mlflow_errors
from nbops.core.store import mask_uri, use_store
from nbops.lifecycle.versions import VersionInfo

# MLflow signature types -> the numpy dtype kind a column must have (or be cast to)
_NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
# numpy dtype of a tensor signature -> MLflow's column type name
_TENSOR_KINDS = {"float64": "double", "float32": "float", "int64": "long", "int32": "integer"}
_ARTIFACTS_HINT = "are the artifacts of its run still where MLflow stored them?"
FEATURES_KEY = "features"  # metadata.nbops.features in the MLmodel file: a tensor's column names


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # MLflow's type name: double, float, long, integer, boolean, string, ...
    required: bool = True


def _holds_flags(values: Any) -> bool:
    """Whether a column holds true/false values: JSON's booleans are not numbers, though numpy
    and pandas would read them as 1/0."""
    return bool(values.dtype.kind == "b" or (values.dtype.kind == "O" and values.map(type).eq(bool).any()))


@dataclass(frozen=True)
class Tensor:
    """A model's single tensor input of shape (-1, width): what a table row becomes."""

    dtype: str  # numpy dtype name, e.g. float32
    width: int


@dataclass
class LoadedModel:
    version: VersionInfo
    columns: tuple[Column, ...]  # empty when the model has no column signature
    flavor: str
    predictor: Any  # the native model (sklearn) or a pyfunc model
    tensor: Tensor | None = None  # a tensor-signature model: called with a (rows, width) matrix

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
            return self._unnamed(frame) if self.tensor else frame
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
                if _holds_flags(values):
                    raise InputError(f"column '{col.name}' must be {col.kind}, got a true/false value")
                if values.dtype.kind not in "iuf":
                    converted = pd.to_numeric(values, errors="coerce")
                    bad = converted.isna() & values.notna()
                    if bad.any():
                        first = values[bad].iloc[0]
                        raise InputError(f"column '{col.name}' must be {col.kind}, got {first!r}")
                    values = converted
                if values.isna().any() and (dtype.startswith("int") or self.tensor is not None):
                    raise InputError(f"column '{col.name}' must be {col.kind}, got a missing value")
                if values.dtype != dtype:
                    values = values.astype(dtype)
            out[col.name] = values
        return pd.DataFrame(out, index=frame.index)

    def _unnamed(self, frame) -> Any:
        """FRAME as a tensor model without feature names reads it: every column, in order."""
        import pandas as pd

        assert self.tensor is not None
        if frame.shape[1] != self.tensor.width:
            raise InputError(f"the model takes {self.tensor.width} features per row, got "
                             f"{frame.shape[1]} column(s)")
        for name in frame.columns:
            values = frame[name]
            if _holds_flags(values):
                raise InputError(f"column '{name}' must be numeric, got a true/false value")
            if values.dtype.kind not in "iuf":
                bad = pd.to_numeric(values, errors="coerce").isna() & values.notna()
                if bad.any():
                    raise InputError(f"column '{name}' must be numeric, got {values[bad].iloc[0]!r}")
        frame = frame.apply(pd.to_numeric)
        empty = frame.columns[frame.isna().any().to_numpy()]
        if len(empty):
            raise InputError(f"column '{empty[0]}' must be a number, got a missing value")
        return frame

    @property
    def classes(self) -> tuple | None:
        """The class labels, in the order of `predict_proba`'s columns, for a scikit-learn model
        that has `predict_proba` (an SVC without `probability=True` has not); else None."""
        if self.flavor != "sklearn" or not hasattr(self.predictor, "predict_proba"):
            return None
        classes = getattr(self.predictor, "classes_", None)
        if classes is None:
            return None
        return tuple(classes.tolist() if hasattr(classes, "tolist") else classes)

    def predict_proba(self, frame) -> Any:
        """Class probabilities (rows, classes) for a frame (or matrix) `predict` would take."""
        if self.classes is None:
            raise ModelError(f"{self.label} gives no class probabilities (its model has no "
                             "predict_proba)")
        return self.predictor.predict_proba(frame)

    def predict(self, frame) -> Any:
        """Predictions for a frame already checked by `frame` (or a matrix in the signature's
        column order), as a numpy array or DataFrame."""
        if self.tensor is not None:
            import numpy as np

            data = frame.to_numpy() if hasattr(frame, "to_numpy") else frame
            matrix = np.ascontiguousarray(data, dtype=self.tensor.dtype)
            if matrix.dtype.kind == "f" and np.isnan(matrix).any():  # a network turns NaN into NaN
                raise ValueError("the input has missing values")
            return self.predictor.predict(matrix)
        return self.predictor.predict(frame)


def _tensor(meta) -> Tensor | None:
    """The single 2-D tensor input of META's signature (shape (-1, N)), or None."""
    sig = getattr(meta, "signature", None)
    if sig is None or sig.inputs is None or not sig.inputs.is_tensor_spec():
        return None
    specs = sig.inputs.inputs
    if len(specs) != 1 or specs[0].name:
        return None
    shape, dtype = tuple(specs[0].shape), str(specs[0].type)
    if len(shape) != 2 or shape[1] is None or shape[1] < 1 or dtype not in _TENSOR_KINDS:
        return None
    return Tensor(dtype, int(shape[1]))


def _columns(meta) -> tuple[Column, ...]:
    sig = getattr(meta, "signature", None)
    if sig is None or sig.inputs is None:
        return ()
    tensor = _tensor(meta)
    if tensor is not None:  # named by kit.log_torch_model's metadata, or unnamed
        names = ((getattr(meta, "metadata", None) or {}).get("nbops") or {}).get(FEATURES_KEY)
        if (isinstance(names, list) and len(names) == tensor.width
                and all(isinstance(n, str) for n in names) and len(set(names)) == len(names)):
            return tuple(Column(n, _TENSOR_KINDS[tensor.dtype]) for n in names)
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


class _HideTorch:
    """A meta path finder that refuses `torch`: skops builds its list of trusted types from
    scikit-learn's `all_estimators()`, which imports every scikit-learn module, torch's array
    API shim included (seconds and hundreds of MB for a model that never uses it). Its import
    errors are skipped there; nothing of torch is cached, so a later import works."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while loading a "
                                      "scikit-learn model)", name=name)
        return None


@contextlib.contextmanager
def _torch_hidden():
    if "torch" in sys.modules:  # already paid for
        yield
        return
    finder = _HideTorch()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def load(version: VersionInfo) -> LoadedModel:
    """Load VERSION from the registry (its artifacts are downloaded once into MLflow's cache)."""
    from nbops.lifecycle.fastload import load_sklearn

    try:  # a scikit-learn model on local disk: as MLflow loads it, without `import mlflow` (~2.3 s)
        with _torch_hidden():
            fast = load_sklearn(version)
    except Exception:  # noqa: BLE001 - not mapped: no MLflow call in it; unpickling runs the model's own code, which may raise anything: MLflow loads it then, and says why it cannot
        fast = None
    if fast is not None:
        return LoadedModel(version, fast[1], "sklearn", fast[0])
    import mlflow
    from mlflow.models import Model

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    use_store(version.store_uri)
    uri = version.uri
    try:
        with map_mlflow_errors(what=f"cannot load {uri}", store=version.store_uri, error=ModelError,
                               hint=_ARTIFACTS_HINT):
            meta = Model.load(uri)
            if "sklearn" in meta.flavors:
                with _torch_hidden():
                    import mlflow.sklearn

                    predictor, flavor = mlflow.sklearn.load_model(uri), "sklearn"
            else:
                predictor, flavor = mlflow.pyfunc.load_model(uri), "pyfunc"
    except OSError as exc:  # the artifacts' files themselves (the store's own failures are mapped)
        raise ModelError(f"cannot load {uri}: {mask_uri(first_line(exc))}", hint=_ARTIFACTS_HINT) from None
    return LoadedModel(version, _columns(meta), flavor, predictor, _tensor(meta))


def input_columns(version: VersionInfo) -> tuple[Column, ...]:
    """VERSION's signature columns, read from its MLmodel file alone: no model is loaded
    (loading a scikit-learn model through skops costs seconds of imports)."""
    from mlflow.models import Model

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    use_store(version.store_uri)
    try:
        with map_mlflow_errors(what=f"cannot read {version.uri}", store=version.store_uri,
                               error=ModelError, hint=_ARTIFACTS_HINT):
            return _columns(Model.load(version.uri))
    except OSError as exc:  # the artifacts' files themselves (the store's own failures are mapped)
        raise ModelError(f"cannot read {version.uri}: {mask_uri(first_line(exc))}", hint=_ARTIFACTS_HINT) from None
