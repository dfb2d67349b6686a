"""How `nbops predict` names its output columns from the shape of a model's predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nbops.core.errors import ModelError
from nbops.lifecycle.predict import prediction_columns


def test_prediction_columns_follow_the_output_shape():
    assert list(prediction_columns(np.array([1, 0]), 2)) == ["prediction"]
    assert list(prediction_columns(np.ones((2, 1)), 2)) == ["prediction"]
    assert list(prediction_columns(pd.Series(["a", "b"]), 2)) == ["prediction"]
    assert list(prediction_columns(np.ones((2, 3)), 2)) == ["prediction_0", "prediction_1", "prediction_2"]
    assert list(prediction_columns(pd.DataFrame({"p_yes": [0.1, 0.2], "p_no": [0.9, 0.8]}), 2)) == ["p_yes", "p_no"]
    assert list(prediction_columns(pd.DataFrame(np.ones((2, 2))), 2)) == ["prediction_0", "prediction_1"]
    with pytest.raises(ModelError, match="3 predictions for 2 rows"):
        prediction_columns(np.ones(3), 2)


# -- a tensor-signature model (a PyTorch module as kit.log_torch_model logs it) --------------------
def _tensor_meta(width: int, features: list[str] | None):
    from mlflow.models import Model, ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype("float32"), (-1, width))]),
                               outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 3))]))
    return Model(signature=signature, metadata={"nbops": {"features": features}} if features else None)


class _Scores:
    """A stand-in network: one score per class (3), and the dtype it was called with."""

    def predict(self, matrix):
        self.dtype = matrix.dtype
        return np.repeat(matrix.sum(axis=1, keepdims=True), 3, axis=1)


def _loaded(width: int, features: list[str] | None):
    from nbops.lifecycle.models import LoadedModel, _columns, _tensor

    meta = _tensor_meta(width, features)
    return LoadedModel(version=None, columns=_columns(meta), flavor="pyfunc",  # type: ignore[arg-type]
                       predictor=_Scores(), tensor=_tensor(meta))


def test_a_tensor_model_reads_its_named_columns_in_order_as_its_dtype():
    from nbops.lifecycle.models import InputError

    model = _loaded(2, ["a", "b"])
    assert [(c.name, c.kind) for c in model.columns] == [("a", "float"), ("b", "float")]
    frame = model.frame(pd.DataFrame({"id": ["x", "y"], "b": ["2", "4"], "a": [1, 3]}))
    assert list(frame.columns) == ["a", "b"]
    out = model.predict(frame)
    assert model.predictor.dtype == np.float32 and out.shape == (2, 3) and out[1, 0] == 7
    with pytest.raises(InputError, match="missing column 'b'"):
        model.frame(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(InputError, match="column 'a' must be float, got 'dark'"):
        model.frame(pd.DataFrame({"a": ["dark"], "b": [1.0]}))
    with pytest.raises(InputError, match="column 'b' must be float, got a missing value"):
        model.frame(pd.DataFrame({"a": [1.0], "b": [None]}))
    with pytest.raises(ValueError, match="missing values"):  # a matrix from serve's fast path
        model.predict(np.array([[1.0, np.nan]]))


def test_a_tensor_model_without_feature_names_takes_its_width_in_order():
    from nbops.lifecycle.models import InputError

    model = _loaded(3, None)
    assert model.columns == () and model.tensor is not None and model.tensor.width == 3
    frame = model.frame(pd.DataFrame([[1, 2, "3"]], columns=["x", "y", "z"]))
    assert model.predict(frame)[0, 0] == 6
    with pytest.raises(InputError, match="takes 3 features per row, got 2"):
        model.frame(pd.DataFrame([[1, 2]]))
    with pytest.raises(InputError, match="column 'z' must be numeric"):
        model.frame(pd.DataFrame([[1, 2, "three"]], columns=["x", "y", "z"]))


def test_feature_names_that_do_not_fit_the_tensor_are_ignored():
    from nbops.lifecycle.models import _columns

    assert _columns(_tensor_meta(3, ["a", "b"])) == ()  # two names for three features
    assert _columns(_tensor_meta(2, ["a", "a"])) == ()  # a name twice


def test_torch_is_refused_while_a_scikit_learn_model_loads():
    from nbops.lifecycle.models import _HideTorch

    with pytest.raises(ModuleNotFoundError):
        _HideTorch().find_spec("torch")
    with pytest.raises(ModuleNotFoundError):
        _HideTorch().find_spec("torch.nn")
    assert _HideTorch().find_spec("torchvision") is None and _HideTorch().find_spec("numpy") is None
