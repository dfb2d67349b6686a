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
from pathlib import Path

from nbops.core.config import Settings
from nbops.core.errors import DataError, RegistryError, first_line
from nbops.core.files import FORMATS
from nbops.lifecycle.monitor.report import to_html, to_json
from nbops.lifecycle.monitor.stats import (
    CLASS_METRICS,
    NUMERIC_KINDS,
    SUPPORTED_METRICS,
    Decay,
    MonitorReport,
    compare_feature,
    metric_kind,
    metric_value,
)
from nbops.lifecycle.registry import Registry
from nbops.lifecycle.versions import ModelInfo, VersionInfo


def _unreadable() -> tuple[type[BaseException], ...]:
    """What pandas' and pyarrow's readers raise for a file that is not a table of that format: a
    parse error or bad text (ValueError), a truncated or corrupt compressed file, no Parquet engine
    installed. Anything else is a bug and keeps its traceback."""
    import lzma
    import sys
    import zipfile

    kinds: tuple[type[BaseException], ...] = (ValueError, OSError, EOFError, ImportError,
                                              zipfile.BadZipFile, lzma.LZMAError)
    arrow = sys.modules.get("pyarrow.lib")  # loaded by read_parquet
    return kinds + ((arrow.ArrowException,) if arrow is not None else ())


def read_table(path: Path):
    """A CSV or Parquet file (by extension) as a DataFrame; NbopsError naming the file otherwise."""
    import pandas as pd

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] in ([".gz"], [".bz2"], [".xz"], [".zip"]):  # a compressed CSV
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise DataError(f"{path}: unknown file type '{path.suffix}'",
                         hint="give a .csv or .parquet file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except _unreadable() as exc:
        first = first_line(exc)
        raise DataError(f"{path}: cannot read it as {fmt}: {first}") from None
    if frame.empty:
        raise DataError(f"{path}: no rows")
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
        raise DataError(f"{path}: column '{column}' must be numeric (the model's signature "
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
                    raise DataError(f"{path}: no column '{col.name}', an input of model {model}",
                                     hint="columns in the file: " + _list(frame.columns))
        return [(c.name, "numeric" if c.kind in NUMERIC_KINDS else "categorical")
                for c in signature if c.name != labels
                and c.name in reference.columns and c.name in current.columns]
    shared = [c for c in reference.columns if c in current.columns and c != labels]
    if not shared:
        raise DataError(f"{ref_path} and {cur_path} share no feature columns",
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
    from nbops.lifecycle.models import InputError

    kind, label = metric_kind(info.compare), loaded.label
    rows = current[current[labels].notna()]
    if rows.empty:
        raise DataError(f"{cur_path}: the labels column '{labels}' has no values")
    try:
        frame = loaded.frame(rows.drop(columns=[labels]))
    except InputError as exc:
        raise DataError(f"{cur_path}: {exc}") from None
    y_true = rows[labels].to_numpy()
    predictor = loaded.predictor
    if kind == "roc_auc" and not hasattr(predictor, "predict_proba"):
        raise RegistryError(f"{label} gives no class probabilities, which roc_auc needs")
    try:
        if kind == "roc_auc":
            value = metric_value(info.compare, y_true, y_score=predictor.predict_proba(frame),
                                 classes=getattr(predictor, "classes_", None))
        else:
            value = metric_value(info.compare, y_true, y_pred=_labels(loaded.predict(frame), kind))
    except (ValueError, TypeError) as exc:  # labels the model never saw, types that do not mix
        first = first_line(exc)
        raise DataError(f"{cur_path}: cannot score {label} on it: {first}") from None
    drop = (validation - value) if info.higher_is_better else (value - validation)
    return Decay(info.compare, validation, value, drop, info.higher_is_better,
                 decayed=drop > drop_limit, rows=len(rows))


def _labels(predictions, kind: str | None):
    """Predictions as one value per row. A classifier that gives one score per class (a PyTorch
    module's logits: a 2-D output) predicts the class whose column scores highest; its classes
    are then 0..K-1, as CrossEntropyLoss has them."""
    import numpy as np

    array = np.asarray(predictions)
    if array.ndim == 2 and array.shape[1] > 1 and kind in CLASS_METRICS:
        return array.argmax(axis=1)
    return array.ravel()


# -- the command ---------------------------------------------------------------------------------
def monitor(settings: Settings, name_or_ref: str, reference: Path, current: Path,
            labels: str | None, out_dir: Path) -> MonitorReport:
    """Compare CURRENT with REFERENCE for model NAME[@ALIAS|/VERSION]; write the reports."""
    from nbops.lifecycle.models import input_columns, load

    thresholds = {k: settings.monitor[k] for k in ("p_value", "psi", "max_drifted_features",
                                                   "metric_drop", "bins")}
    ref_frame, cur_frame = read_table(reference), read_table(current)
    # a handful of rows passes every test (one absurd row reads as "no drift"): refuse to guess
    for path, frame in ((reference, ref_frame), (current, cur_frame)):
        if len(frame) < settings.monitor["min_rows"]:
            raise DataError(f"{path}: {len(frame)} row(s), too few to judge drift (at least "
                            f"{settings.monitor['min_rows']} needed)",
                            hint="collect more data, or lower [tool.nbops.monitor] min_rows")
    if labels and labels not in cur_frame.columns:
        raise DataError(f"{current}: no labels column '{labels}'",
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
             if recorded and labels else None)

    out_dir = Path(out_dir)
    report = MonitorReport(version.name, version.version, str(reference), str(current),
                           len(ref_frame), len(cur_frame), tuple(results), decay, thresholds,
                           out_dir / "drift.json", out_dir / "drift.html")
    # both documents are made before either is written: an error leaves no half a report

    documents = {report.json_path: to_json(report), report.html_path: to_html(report, samples)}
    for path, text in documents.items():
        _write_atomic(path, text)
    return report


def _write_atomic(path: Path, text: str) -> None:
    from nbops.core.files import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}",
                         hint="choose another folder with --out") from None
