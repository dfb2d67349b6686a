"""The statistics behind `nbops monitor`, on generated samples: no kernel, no MLflow."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nbops.core.config import DEFAULT_MONITOR
from nbops.core.errors import ConfigError, DataError
from nbops.lifecycle.monitor.drift import read_table
from nbops.lifecycle.monitor.stats import (
    categorical_counts,
    categorical_drift,
    compare_feature,
    metric_kind,
    metric_value,
    numeric_counts,
    numeric_drift,
    psi,
)

RNG = np.random.default_rng(7)
NORMAL = RNG.normal(10.0, 2.0, size=3000)


def test_identical_numeric_samples_do_not_drift():
    statistic, p_value, size = numeric_drift(NORMAL, NORMAL.copy())
    assert statistic == 0.0 and p_value == 1.0
    assert size == pytest.approx(0.0, abs=1e-12)
    assert not compare_feature("x", "numeric", NORMAL, NORMAL.copy(), DEFAULT_MONITOR).drifted


def test_a_fresh_sample_of_the_same_distribution_does_not_drift():
    fresh = np.random.default_rng(8).normal(10.0, 2.0, size=3000)
    result = compare_feature("x", "numeric", NORMAL, fresh, DEFAULT_MONITOR)
    assert result.psi < 0.05 and not result.drifted


def test_a_two_sd_shift_drifts_with_a_large_psi():
    result = compare_feature("x", "numeric", NORMAL, NORMAL + 2 * NORMAL.std(), DEFAULT_MONITOR)
    assert (result.kind, result.test) == ("numeric", "ks")
    assert result.drifted
    assert result.p_value < 1e-50
    assert result.psi > 1.0
    assert result.statistic > 0.6


def test_significance_alone_is_not_drift():
    # 0.05 sd on 200,000 rows: KS calls it significant, PSI says it is too small to matter
    big = np.random.default_rng(1).normal(size=200_000)
    result = compare_feature("x", "numeric", big, big + 0.05, DEFAULT_MONITOR)
    assert result.p_value < DEFAULT_MONITOR["p_value"]
    assert result.psi < DEFAULT_MONITOR["psi"] and not result.drifted


def test_psi_by_hand_and_with_an_empty_bin():
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([10, 20, 30], [10, 20, 30]) == pytest.approx(0.0, abs=1e-12)
    empty = psi([100, 0], [50, 50])  # the empty bin stands at EPSILON, not zero
    assert math.isfinite(empty) and empty > 1.0


def test_bins_are_reference_quantiles_and_open_ended():
    ref = np.arange(100, dtype=float)
    ref_counts, cur_counts = numeric_counts(ref, np.array([-50.0, 500.0, np.nan]), bins=10)
    assert ref_counts[:-1].tolist() == [10] * 10 and ref_counts[-1] == 0  # last: missing values
    assert cur_counts.tolist() == [1] + [0] * 8 + [1, 1]  # outside the range: the outer bins


def test_missing_values_count_towards_psi_only():
    ref = NORMAL.copy()
    cur = NORMAL.copy()
    cur[: len(cur) // 2] = np.nan  # half the values gone, the rest unchanged
    statistic, p_value, size = numeric_drift(ref, cur)
    assert p_value > 0.01  # the values present look alike ...
    assert size > 0.2  # ... but the missing bin moved


def test_a_constant_reference_still_sees_a_change():
    ref = np.full(500, 3.0)
    assert numeric_drift(ref, ref.copy())[2] == pytest.approx(0.0, abs=1e-12)
    assert compare_feature("c", "numeric", ref, np.full(500, 4.0), DEFAULT_MONITOR).drifted


def test_categorical_shift_is_found_by_chi_square():
    ref = RNG.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=2000)
    cur = RNG.choice(["a", "b", "c"], p=[0.2, 0.3, 0.5], size=2000)
    result = compare_feature("cat", "categorical", ref, cur, DEFAULT_MONITOR)
    assert (result.kind, result.test) == ("categorical", "chi2")
    assert result.drifted and result.p_value < 1e-50 and result.psi > 0.5


def test_identical_categories_do_not_drift():
    ref = RNG.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=2000)
    statistic, p_value, size = categorical_drift(ref, ref.copy())
    assert statistic == pytest.approx(0.0) and p_value == pytest.approx(1.0)
    assert size == pytest.approx(0.0, abs=1e-12)
    assert categorical_drift(["x"] * 10, ["x"] * 5) == (0.0, 1.0, 0.0)  # one category only


def test_new_and_missing_categories_are_counted():
    categories, ref, cur = categorical_counts(["a", "a", None], ["a", "z", "z"])
    assert categories == ["<missing>", "a", "z"]
    assert ref.tolist() == [1, 2, 0] and cur.tolist() == [0, 1, 2]


@pytest.mark.parametrize(("name", "kind"), [
    ("accuracy", "accuracy"), ("val_accuracy", "accuracy"), ("f1", "f1"),
    ("val_balanced_accuracy", "balanced_accuracy"), ("test_rmse", "rmse"), ("mse", "mse"),
    ("roc_auc", "roc_auc"), ("perplexity", None),
])
def test_metric_names(name, kind):
    assert metric_kind(name) == kind


def test_metric_values():
    y = np.array([0, 1, 1, 0])
    assert metric_value("accuracy", y, y_pred=np.array([0, 1, 0, 0])) == 0.75
    assert metric_value("rmse", np.array([1.0, 3.0]), y_pred=np.array([2.0, 2.0])) == 1.0
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    assert metric_value("roc_auc", y, y_score=scores, classes=[0, 1]) == 1.0
    with pytest.raises(ConfigError, match="cannot compute the metric 'perplexity'"):
        metric_value("perplexity", y, y_pred=y)


def test_read_table_csv_and_parquet(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        pd.testing.assert_frame_equal(read_table(tmp_path / name), frame)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("t.txt", "a\n1\n", "unknown file type '.txt'"),
    ("gone.csv", None, "no such file"),
    ("empty.csv", "", "the file is empty"),
    ("header.csv", "a,b\n", "no rows"),
    ("bad.parquet", "not parquet at all", "cannot read it as parquet"),
    # read_table catches what the readers raise for a bad file, not everything (a bug keeps its traceback)
    ("bad.csv.gz", "not gzip at all", "cannot read it as csv"),
    ("bad.csv.zip", "not zip at all", "cannot read it as csv"),
    ("bad.csv.xz", "not xz at all", "cannot read it as csv"),
    ("bad.csv.bz2", "not bz2 at all", "cannot read it as csv"),
    ("latin.csv", b"a\n\xff\xfe\x00\n", "cannot read it as csv"),
])
def test_read_table_errors_name_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_table(path)
    assert str(path) in info.value.message
    assert "\n" not in info.value.one_line()


def test_infinities_count_as_missing_and_still_plot(tmp_path):
    import pandas as pd

    from nbops.lifecycle.monitor.drift import _as_numeric
    from nbops.lifecycle.monitor.report import _plot

    frame = pd.DataFrame({"x": [1.0, float("inf"), 2.0, -float("inf"), 3.0],
                          "t": ["1", "inf", "2", "-inf", "3"]})
    for column in ("x", "t"):
        values = _as_numeric(frame, column, tmp_path / "f.csv", "double")
        assert np.isnan(values).sum() == 2
        assert _plot(column, "numeric", values, values + 1, drifted=False)  # no ValueError
    statistic, p_value, size = numeric_drift(values, values)
    assert statistic == 0.0 and size < 1e-9


def test_whole_number_codes_are_one_category_as_ints_or_floats():
    codes = np.array([101, 102, 103] * 200)
    with_missing = np.append(codes.astype(float), np.nan)  # what pandas reads when one is empty
    categories, ref, cur = categorical_counts(codes, with_missing)
    assert categories == ["101", "102", "103", "<missing>"]
    statistic, p_value, size = categorical_drift(codes, with_missing)
    assert p_value > 0.5 and size < 0.01


def test_class_scores_become_labels_for_class_metrics_only():
    from nbops.lifecycle.monitor.drift import _labels

    scores = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])  # a network's logits, 3 classes
    assert _labels(scores, "accuracy").tolist() == [1, 0]
    assert _labels(scores, "f1").tolist() == [1, 0]
    assert _labels(scores, "rmse").shape == (6,)  # not a class metric: as it is (and refused later)
    assert _labels(np.array([[1.5], [2.5]]), "mae").tolist() == [1.5, 2.5]
    assert _labels(np.array(["a", "b"]), "accuracy").tolist() == ["a", "b"]
