"""`nbops monitor`: has the data a model sees drifted from the data it trained on, and (given
true labels) has its metric decayed?

Each feature is compared on its own: numeric ones with the two-sample Kolmogorov-Smirnov test,
categorical ones with a chi-square test of homogeneity, and both with the population stability
index (PSI). A feature drifts only when the test is significant *and* the PSI is large: on large
samples KS flags differences too small to matter, and PSI alone ignores sample size. With labels,
the registered model's compare metric is computed on the current data and set against the value
recorded for the version at validation.

The statistics are plain functions of arrays (`numeric_drift`, `categorical_drift`, `psi`,
`metric_value`); `monitor` checks all input, computes everything, and only then writes
`drift.json` and a self-contained `drift.html` (each atomically) into the report folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Settings
from .errors import NbopsError, RegistryError, first_line
from .files import FORMATS
from .registry import ModelInfo, Registry, VersionInfo

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
        raise NbopsError(f"nbops monitor cannot compute the metric '{name}'",
                         hint="supported: " + ", ".join(SUPPORTED_METRICS))
    if kind == "roc_auc":
        from sklearn.metrics import roc_auc_score

        if y_score.ndim == 2 and y_score.shape[1] == 2:  # binary: the positive class's score
            return float(roc_auc_score(y_true, y_score[:, 1]))
        return float(roc_auc_score(y_true, y_score, multi_class="ovr", labels=classes))
    return float(_scorers()[kind](y_true, y_pred))


# -- input --------------------------------------------------------------------------------------
def read_table(path: Path):
    """A CSV or Parquet file (by extension) as a DataFrame; NbopsError naming the file otherwise."""
    import pandas as pd

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] in ([".gz"], [".bz2"], [".xz"], [".zip"]):  # a compressed CSV
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise NbopsError(f"{path}: unknown file type '{path.suffix}'",
                         hint="give a .csv or .parquet file")
    if not path.is_file():
        raise NbopsError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise NbopsError(f"{path}: the file is empty") from None
    except Exception as exc:  # noqa: BLE001 - parsers raise many types; all mean "unreadable"
        first = first_line(exc)
        raise NbopsError(f"{path}: cannot read it as {fmt}: {first}") from None
    if frame.empty:
        raise NbopsError(f"{path}: no rows")
    return frame


def _as_numeric(frame, column: str, path: Path, declared: str):
    """COLUMN as float64 (infinities count as missing: no bin or plot can hold them);
    NbopsError naming the first value that is not a number."""
    import numpy as np
    import pandas as pd

    values = frame[column]
    if values.dtype.kind in "iufb":
        out = values.to_numpy(dtype=float, copy=True)
        out[np.isinf(out)] = np.nan
        return out
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        raise NbopsError(f"{path}: column '{column}' must be numeric (the model's signature "
                         f"says {declared}), "
                         f"got {values[bad].iloc[0]!r}")
    out = converted.to_numpy(dtype=float, copy=True)
    out[np.isinf(out)] = np.nan
    return out


def _features(signature, reference, current, ref_path: Path, cur_path: Path,
              labels: str | None, model: str) -> list[tuple[str, str]]:
    """(column, numeric|categorical) for every feature to compare."""
    if signature:
        for col in signature:
            for frame, path in ((reference, ref_path), (current, cur_path)):
                if col.required and col.name not in frame.columns:
                    raise NbopsError(f"{path}: no column '{col.name}', an input of model {model}",
                                     hint="columns in the file: " + _list(frame.columns))
        return [(c.name, "numeric" if c.kind in NUMERIC_KINDS else "categorical")
                for c in signature if c.name != labels
                and c.name in reference.columns and c.name in current.columns]
    shared = [c for c in reference.columns if c in current.columns and c != labels]
    if not shared:
        raise NbopsError(f"{ref_path} and {cur_path} share no feature columns",
                         hint=f"{ref_path.name}: {_list(reference.columns)}; "
                              f"{cur_path.name}: {_list(current.columns)}")
    return [(c, "numeric" if reference[c].dtype.kind in "iuf" and current[c].dtype.kind in "iuf"
             else "categorical") for c in shared]


def _list(columns, limit: int = 10) -> str:
    names = [str(c) for c in columns]
    return ", ".join(names[:limit]) + (f" (and {len(names) - limit} more)" if len(names) > limit else "")


# -- decay --------------------------------------------------------------------------------------
def _recorded_metric(registry: Registry, version: VersionInfo) -> tuple[ModelInfo, float]:
    """(ModelInfo, the version's recorded compare metric), checked before the model is loaded."""
    info = registry.model(version.name)
    label = f"{version.name}/{version.version}"
    if not info.compare:
        raise RegistryError(f"model '{version.name}' names no compare metric, so --labels has "
                            "nothing to compare", hint="set metadata.nbops.model.compare in its notebook")
    if metric_kind(info.compare) is None:
        raise RegistryError(f"model '{version.name}' compares by '{info.compare}', which nbops "
                            "monitor cannot compute", hint="supported: " + ", ".join(SUPPORTED_METRICS))
    validation = version.metrics.get(info.compare)
    if validation is None or math.isnan(validation):
        raise RegistryError(f"{label} has no recorded '{info.compare}' to compare with",
                            hint=f"nbops models list {version.name} shows its metrics")
    return info, float(validation)


def _decay(info: ModelInfo, validation: float, loaded, current, cur_path: Path, labels: str,
           drop_limit: float) -> Decay:
    """The compare metric of LOADED on the labelled rows of CURRENT, against VALIDATION."""
    from .models import InputError

    kind, label = metric_kind(info.compare), loaded.label
    rows = current[current[labels].notna()]
    if rows.empty:
        raise NbopsError(f"{cur_path}: the labels column '{labels}' has no values")
    try:
        frame = loaded.frame(rows.drop(columns=[labels]))
    except InputError as exc:
        raise NbopsError(f"{cur_path}: {exc}") from None
    y_true = rows[labels].to_numpy()
    predictor = loaded.predictor
    if kind == "roc_auc" and not hasattr(predictor, "predict_proba"):
        raise RegistryError(f"{label} gives no class probabilities, which roc_auc needs")
    try:
        if kind == "roc_auc":
            value = metric_value(info.compare, y_true, y_score=predictor.predict_proba(frame),
                                 classes=getattr(predictor, "classes_", None))
        else:
            import numpy as np

            value = metric_value(info.compare, y_true,
                                 y_pred=np.asarray(loaded.predict(frame)).ravel())
    except (ValueError, TypeError) as exc:  # labels the model never saw, types that do not mix
        first = first_line(exc)
        raise NbopsError(f"{cur_path}: cannot score {label} on it: {first}") from None
    drop = (validation - value) if info.higher_is_better else (value - validation)
    return Decay(info.compare, validation, value, drop, info.higher_is_better,
                 decayed=drop > drop_limit, rows=len(rows))


# -- the command ---------------------------------------------------------------------------------
def monitor(settings: Settings, name_or_ref: str, reference: Path, current: Path,
            labels: str | None, out_dir: Path) -> MonitorReport:
    """Compare CURRENT with REFERENCE for model NAME[@ALIAS|/VERSION]; write the reports."""
    from .models import input_columns, load

    thresholds = {k: settings.monitor[k] for k in ("p_value", "psi", "max_drifted_features",
                                                   "metric_drop", "bins")}
    ref_frame, cur_frame = read_table(reference), read_table(current)
    if labels and labels not in cur_frame.columns:
        raise NbopsError(f"{current}: no labels column '{labels}'",
                         hint="columns in the file: " + _list(cur_frame.columns))
    registry = Registry(settings)
    version = registry.resolve(name_or_ref)
    model = f"{version.name}/{version.version}"
    # the signature is enough for drift; the model itself is loaded only to score labels
    recorded = _recorded_metric(registry, version) if labels else None
    loaded = load(version) if labels else None
    signature = loaded.columns if loaded else input_columns(version)
    features = _features(signature, ref_frame, cur_frame, reference, current, labels, model)

    results, samples = [], {}
    for name, kind in features:
        if kind == "numeric":
            declared = next((c.kind for c in signature if c.name == name), "")
            ref_values = _as_numeric(ref_frame, name, reference, declared)
            cur_values = _as_numeric(cur_frame, name, current, declared)
        else:
            ref_values, cur_values = ref_frame[name].to_numpy(), cur_frame[name].to_numpy()
        results.append(compare_feature(name, kind, ref_values, cur_values, thresholds))
        samples[name] = (ref_values, cur_values)
    decay = (_decay(*recorded, loaded, cur_frame, current, labels, thresholds["metric_drop"])
             if recorded else None)

    out_dir = Path(out_dir)
    report = MonitorReport(version.name, version.version, str(reference), str(current),
                           len(ref_frame), len(cur_frame), tuple(results), decay, thresholds,
                           out_dir / "drift.json", out_dir / "drift.html")
    # both documents are made before either is written: an error leaves no half a report
    from .monitor_report import to_html, to_json

    documents = {report.json_path: to_json(report), report.html_path: to_html(report, samples)}
    for path, text in documents.items():
        _write_atomic(path, text)
    return report


def _write_atomic(path: Path, text: str) -> None:
    from .files import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise NbopsError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="choose another folder with --out") from None
