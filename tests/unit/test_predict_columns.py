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
