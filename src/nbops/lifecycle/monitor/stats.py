"""Drift statistics, pure: per-feature KS / chi-square and PSI, the metrics monitor can recompute,
and the report's dataclasses. No file, model or store here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.errors import ConfigError

EPSILON = 1e-4  # stands in for an empty bin's share in PSI (log of zero otherwise)
NUMERIC_KINDS = ("double", "float", "long", "integer")  # MLflow signature types tested with KS
_MISSING = "<missing>"  # a categorical feature's missing values count as one more category


# -- results -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureDrift:
    name: str
    kind: str  # numeric or categorical
    test: str  # ks or chi2
    statistic: float
    p_value: float
    psi: float
    drifted: bool


@dataclass(frozen=True)
class Decay:
    metric: str
    validation: float  # recorded with the model version
    current: float  # on the current data
    drop: float  # how much worse current is (positive: worse), whatever the metric's direction
    higher_is_better: bool
    decayed: bool
    rows: int  # rows with a label


@dataclass(frozen=True)
class MonitorReport:
    model: str
    version: str
    reference: str
    current: str
    reference_rows: int
    current_rows: int
    features: tuple[FeatureDrift, ...]
    decay: Decay | None
    thresholds: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        return tuple(f for f in self.features if f.drifted)

    @property
    def drift(self) -> bool:
        return len(self.drifted) > self.thresholds["max_drifted_features"]

    @property
    def alarm(self) -> bool:
        return self.drift or bool(self.decay and self.decay.decayed)


# -- statistics (pure: arrays in, numbers out) --------------------------------------------------
def psi(reference_counts, current_counts) -> float:
    """Population stability index of two histograms over the same bins."""
    import numpy as np

    ref = np.asarray(reference_counts, dtype=float)
    cur = np.asarray(current_counts, dtype=float)
    ref = np.clip(ref / max(ref.sum(), 1.0), EPSILON, None)
    cur = np.clip(cur / max(cur.sum(), 1.0), EPSILON, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_counts(reference, current, bins: int):
    """Histograms of both samples over the reference's quantile bins (outer bins open-ended, so
    current values outside the reference's range still count), plus one bin of missing values."""
    import numpy as np

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref_ok = ref[~np.isnan(ref)]
    # inner edges only; repeated quantiles (ties, constant columns) collapse into one edge
    edges = (np.unique(np.quantile(ref_ok, np.linspace(0, 1, bins + 1))[1:-1])
             if ref_ok.size else np.array([]))

    def counts(values):
        ok = values[~np.isnan(values)]
        hist = np.bincount(np.searchsorted(edges, ok, side="left"), minlength=edges.size + 1)
        return np.append(hist, values.size - ok.size)

    return counts(ref), counts(cur)


def numeric_drift(reference, current, bins: int = 10) -> tuple[float, float, float]:
    """(KS statistic, p-value, PSI) of two numeric samples; missing values only count in PSI."""
    import numpy as np
    from scipy import stats

    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref_ok, cur_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    if ref_ok.size and cur_ok.size:
        result = stats.ks_2samp(ref_ok, cur_ok)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    elif ref_ok.size or cur_ok.size:  # values on one side only: as different as can be
        statistic, p_value = 1.0, 0.0
    else:
        statistic, p_value = 0.0, 1.0
    return statistic, p_value, psi(*numeric_counts(ref, cur, bins))


def categorical_counts(reference, current):
    """(categories, reference counts, current counts) over the categories of both samples."""
    import pandas as pd

    def label(value) -> str:
        # a code column of whole numbers reads as int64 from one file and float64 from another
        # (a missing value turns it to floats): 101 and 101.0 are the same category
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def tally(values):
        series = pd.Series(values, dtype=object)
        return series.where(series.notna(), _MISSING).map(label).value_counts()

    ref, cur = tally(reference), tally(current)
    categories = sorted(set(ref.index) | set(cur.index))
    return (categories, ref.reindex(categories, fill_value=0).to_numpy(),
            cur.reindex(categories, fill_value=0).to_numpy())


def categorical_drift(reference, current) -> tuple[float, float, float]:
    """(chi-square statistic, p-value, PSI) of two categorical samples."""
    import numpy as np
    from scipy import stats

    categories, ref, cur = categorical_counts(reference, current)
    if len(categories) < 2:  # one category on both sides: nothing can differ
        return 0.0, 1.0, 0.0
    result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(result.statistic), float(result.pvalue), psi(ref, cur)


def compare_feature(name: str, kind: str, reference, current, thresholds: dict[str, Any]) -> FeatureDrift:
    """One feature's test, PSI and verdict: it drifts when the test is significant (p below
    `p_value`) and the shift is large (PSI at least `psi`)."""
    if kind == "numeric":
        test, (statistic, p_value, size) = "ks", numeric_drift(reference, current, int(thresholds["bins"]))
    else:
        test, (statistic, p_value, size) = "chi2", categorical_drift(reference, current)
    drifted = p_value < thresholds["p_value"] and size >= thresholds["psi"]
    return FeatureDrift(name, kind, test, statistic, p_value, size, drifted)


CLASS_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall")  # of labels
SUPPORTED_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
                     "rmse", "mse", "mae", "r2")


def _scorers():
    """Metric name -> function(y_true, y_pred); macro averages, as `kit` records them."""
    from sklearn import metrics as m

    return {
        "accuracy": m.accuracy_score,
        "balanced_accuracy": m.balanced_accuracy_score,
        "f1": lambda y, p: m.f1_score(y, p, average="macro"),
        "precision": lambda y, p: m.precision_score(y, p, average="macro", zero_division=0),
        "recall": lambda y, p: m.recall_score(y, p, average="macro", zero_division=0),
        "rmse": lambda y, p: math.sqrt(m.mean_squared_error(y, p)),
        "mse": m.mean_squared_error,
        "mae": m.mean_absolute_error,
        "r2": m.r2_score,
    }


def metric_kind(name: str) -> str | None:
    """The supported metric NAME stands for: itself, or the longest one it ends with after an
    underscore (`val_accuracy` -> accuracy, `val_balanced_accuracy` -> balanced_accuracy)."""
    if name in SUPPORTED_METRICS:
        return name
    matches = [m for m in SUPPORTED_METRICS if name.endswith("_" + m)]
    return max(matches, key=len) if matches else None


def metric_value(name: str, y_true, y_pred=None, y_score=None, classes=None) -> float:
    """The supported metric NAME of predictions (or, for roc_auc, class scores with CLASSES
    in the scores' column order)."""
    kind = metric_kind(name)
    if kind is None:
        raise ConfigError(f"nbops monitor cannot compute the metric '{name}'",
                         hint="supported: " + ", ".join(SUPPORTED_METRICS))
    if kind == "roc_auc":
        from sklearn.metrics import roc_auc_score

        if y_score.ndim == 2 and y_score.shape[1] == 2:  # binary: the positive class's score
            return float(roc_auc_score(y_true, y_score[:, 1]))
        return float(roc_auc_score(y_true, y_score, multi_class="ovr", labels=classes))
    return float(_scorers()[kind](y_true, y_pred))


# -- input --------------------------------------------------------------------------------------
