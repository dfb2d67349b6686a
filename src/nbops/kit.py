"""Kernel-side helpers the templates share: seeding, bundled datasets, splits, metrics, models.

Imported inside notebooks (`from nbops import kit`). Heavy libraries (numpy, pandas,
scikit-learn, torch, mlflow) load inside the functions that use them, so importing the kit is
free. It imports nothing of nbops but the recorder (and `nbops.upstream` inside `upstream()`);
the framework never imports it.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from typing import Any

from nbops.record import record

DATASETS = ("iris", "wine", "breast_cancer", "digits")
CLASSIFIERS = ("logistic_regression", "random_forest", "gradient_boosting", "svm", "knn")


def upstream(name: str):
    """In a pipeline notebook: the run of the notebook NAME it needs (`metadata.nbops.needs`),
    from the same pipeline run, with its records, metrics, params and a local artifacts folder."""
    from nbops.upstream import upstream as read

    return read(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when it is imported) PyTorch."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)


def frame_digest(X, y=None) -> str:
    """A content digest of a feature frame (and target), stable across runs and machines."""
    import pandas as pd

    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(X, index=False).values.tobytes())
    h.update(",".join(map(str, X.columns)).encode())
    if y is not None:
        h.update(pd.util.hash_pandas_object(pd.Series(y), index=False).values.tobytes())
    return h.hexdigest()


def load_dataset(name: str, csv_path: str = "", target: str = "target"):
    """(X, y) as a DataFrame and a Series: one of scikit-learn's bundled datasets, or a CSV file
    with a `target` column (the label to predict; the other columns are the features, numbers or
    text, missing values allowed). Records the dataset's name, shape and digest."""
    import pandas as pd

    if csv_path:
        _check_header(csv_path)
        frame = pd.read_csv(csv_path)
        if target not in frame.columns:
            raise ValueError(
                f"{csv_path}: no target column {target!r}; its columns are {', '.join(map(str, frame.columns))}"
                f" (name the column to predict {target!r}, or set the `target` parameter)"
            )
        X, y = frame.drop(columns=[target]), frame[target]
        name = os.path.basename(csv_path)
    else:
        from sklearn import datasets

        if name not in DATASETS:
            raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        X, y = bunch.data, bunch.target
        # the bundled datasets' names ("sepal length (cm)") become identifiers; a CSV's own
        # headers are kept as written: `nbops predict` and `serve` take the same file's headers
        X.columns = [str(c).replace(" ", "_").replace("(", "").replace(")", "") for c in X.columns]
    record("dataset", name)
    record("dataset_rows", int(len(X)))
    record("data_digest", frame_digest(X, y))
    return X, y


def _check_header(csv_path: str) -> None:
    """A header naming one column twice is refused (pandas would rename the second `NAME.1`).
    `nbops run` refuses it before the kernel when the file is declared in metadata.nbops.data
    (notebook/inputs.duplicated_column: the kernel side imports no framework layer, so the
    check is its own here)."""
    import csv

    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as f:
        header = next(csv.reader([f.readline(1 << 20)]), [])
    dup = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if dup is not None:
        raise ValueError(f"{csv_path}: column {dup!r} appears more than once in the header"
                         " (give each column its own name)")


def split(X, y, validation_size: float = 0.25, seed: int = 0, stratify: bool = True):
    """Train/validation split, stratified by the target for classification."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        X, y, test_size=validation_size, random_state=seed, stratify=y if stratify else None
    )


def needs_preprocessing(X) -> bool:
    """True when a feature frame has text (non-numeric) columns or missing values."""
    import pandas as pd

    return bool(X.isna().any().any()) or not all(
        pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in X.dtypes
    )


def preprocessor(X, scale: bool):
    """A ColumnTransformer for X: numbers imputed with the median (and standardised when `scale`),
    text columns imputed with 'missing' and one-hot encoded (unknown categories ignored)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in X.columns if c in set(X.select_dtypes(include="number").columns)]
    text = [c for c in X.columns if c not in set(numeric)]
    numbers = make_pipeline(SimpleImputer(strategy="median"), *([StandardScaler()] if scale else []))
    categories = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    parts = [("numbers", numbers, numeric)] if numeric else []
    parts += [("text", categories, text)] if text else []
    return ColumnTransformer(parts)


def make_classifier(kind: str, seed: int = 0, features=None, **hyper: Any):
    """A scikit-learn model for one of CLASSIFIERS, with scaling where the model needs it.

    When `features` (the training frame) has text columns or missing values, the model is a
    Pipeline of `preprocessor(features)` and the estimator; otherwise (or without `features`) it
    is the plain estimator (or StandardScaler + estimator)."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    hyper = {k: v for k, v in hyper.items() if v is not None}
    if kind == "logistic_regression":
        estimator, scale = LogisticRegression(random_state=seed, **hyper), True
    elif kind == "random_forest":
        estimator, scale = RandomForestClassifier(random_state=seed, **hyper), False
    elif kind == "gradient_boosting":
        estimator, scale = GradientBoostingClassifier(random_state=seed, **hyper), False
    elif kind == "svm":
        estimator, scale = SVC(random_state=seed, **hyper), True
    elif kind == "knn":
        estimator, scale = KNeighborsClassifier(**hyper), True
    else:
        raise ValueError(f"unknown model {kind!r}; choose one of {CLASSIFIERS}")
    if features is not None and needs_preprocessing(features):
        return make_pipeline(preprocessor(features, scale), estimator)
    return make_pipeline(StandardScaler(), estimator) if scale else estimator


def classification_metrics(y_true, y_pred, prefix: str = "") -> dict[str, float]:
    """Accuracy and macro F1, recorded (so nbops logs them as MLflow metrics) and returned."""
    from sklearn.metrics import accuracy_score, f1_score

    metrics = {
        f"{prefix}accuracy": float(accuracy_score(y_true, y_pred)),
        f"{prefix}f1": float(f1_score(y_true, y_pred, average="macro")),
    }
    for name, value in metrics.items():
        record(name, value)
    return metrics


def _skops_io():
    """`skops.io`, imported without torch: skops lists scikit-learn's estimators by importing
    every scikit-learn module, torch's array-API shim included (~3 s of a kernel whose model never
    uses torch; `nbops predict` and `serve` load models the same way, lifecycle/models.py). An
    import refused there is skipped; nothing of torch is cached, so a later `import torch` works."""
    if "torch" in sys.modules or "skops.io" in sys.modules:  # already paid for
        import skops.io

        return skops.io
    sys.modules["torch"] = None  # None: `import torch` raises ImportError
    try:
        import skops.io
    finally:
        del sys.modules["torch"]
    return skops.io


def log_text(text: str, artifact_file: str) -> None:
    """`mlflow.log_text(text, artifact_file)` for the run nbops started (e.g. a pipeline's prepared
    data, `kit.log_text(df.to_csv(index=False), "data/train.csv")`), without `import mlflow`
    (~2 s) where the run's artifacts are a local folder (the embedded store: `nbops run` hands
    it over as NBOPS_RUN_ARTIFACTS); through MLflow elsewhere; nothing under `--no-track`."""
    parts = artifact_file.replace("\\", "/").split("/")
    if not artifact_file or artifact_file.startswith("/") or any(p in ("", ".", "..") or ":" in p for p in parts):
        raise ValueError(f"artifact_file {artifact_file!r}: give a relative path inside the run's artifacts, "
                         "e.g. 'data/train.csv'")
    if parts[0] in ("nbops", "notebook"):  # nbops writes its own there when the run ends
        raise ValueError(f"artifact_file {artifact_file!r}: {parts[0]}/ holds nbops's own artifacts; "
                         "choose another folder, e.g. 'data/'")
    if os.environ.get("NBOPS_NO_TRACK"):  # nbops run --no-track
        return
    folder = os.environ.get("NBOPS_RUN_ARTIFACTS", "")
    run_id = os.environ.get("MLFLOW_RUN_ID", "")
    # this run's folder (an inherited one names another run), on this machine (a Ray worker
    # elsewhere has no such folder: MLflow's client then)
    if folder and run_id and run_id in folder and os.path.isdir(folder):
        target = os.path.join(folder, *parts)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_sklearn_model(model, X_example, name: str = "model"):
    """Log a fitted scikit-learn model to the run nbops started, with a signature and an example.

    pip requirements are given explicitly: inferring them costs a subprocess (~3 s a call).
    """
    if os.environ.get("NBOPS_NO_TRACK"):  # nbops run --no-track
        return None
    import mlflow
    import sklearn
    from mlflow.models import infer_signature

    skops_io = _skops_io()  # MLflow's default, safe format for scikit-learn models

    # The types this model needs when loaded back: trusted, since we just built it.
    trusted = skops_io.get_untrusted_types(data=skops_io.dumps(model))
    example = X_example.head(5)
    signature = infer_signature(example, model.predict(example))
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        signature=signature,
        input_example=example,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"],
        skops_trusted_types=trusted,
    )
    record("model_uri", info.model_uri)
    return info


def torch_device(prefer_gpu: bool = True) -> str:
    """'cuda' when a GPU is visible (and wanted), else 'cpu'; recorded as `device`."""
    import torch

    device = "cuda" if prefer_gpu and torch.cuda.is_available() else "cpu"
    record("device", torch.cuda.get_device_name(0) if device == "cuda" else "cpu")
    return device


def log_torch_model(model, X_example, name: str = "model"):
    """Log a PyTorch module with a tensor signature (float32, one row of features per row) and
    an input example. The caller's module is left as it was (device, train/eval mode): a CPU copy
    in eval mode is logged. When X_example is a DataFrame its column names are kept in the
    MLmodel's metadata (`nbops.features`), so `nbops serve`, `predict` and `monitor` read tables
    with those columns for it."""
    if os.environ.get("NBOPS_NO_TRACK"):  # nbops run --no-track
        return None
    import copy

    import mlflow
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    exported = copy.deepcopy(model).to("cpu").eval()
    columns = getattr(X_example, "columns", None)
    rows = X_example[:5] if columns is None else X_example.head(5)
    example = np.asarray(rows, dtype=np.float32)
    with torch.no_grad():
        out = exported(torch.from_numpy(example)).numpy()
    metadata = {"nbops": {"features": [str(c) for c in columns]}} if columns is not None else None
    info = mlflow.pytorch.log_model(
        exported,
        name=name,
        signature=infer_signature(example, out),
        input_example=example,
        metadata=metadata,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
    )
    record("model_uri", info.model_uri)
    return info


def _figure(width: float, height: float, ncols: int = 1):
    """A matplotlib figure on the Agg canvas, outside pyplot (no backend switch, nothing leaks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _log_and_show(fig, artifact_file: str):
    """Log FIG into the active MLflow run (the one nbops started) and show it in the notebook."""
    import io

    import mlflow

    mlflow.log_figure(fig, artifact_file)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # plain Python: the artifact is enough
        return fig
    if get_ipython() is not None:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        display(Image(data=buffer.getvalue(), format="png"))
    return fig


def log_confusion_matrix(y_true, y_pred, labels=None, artifact_file: str = "figures/confusion_matrix.png",
                         names=None):
    """Plot the confusion matrix (rows: true class, columns: predicted), log it to MLflow as
    ARTIFACT_FILE and show it; returns the matplotlib Figure. NAMES labels the axes: a mapping
    class -> name, or a sequence indexed by class (a bundled dataset's `target_names`, whose
    classes are 0, 1, ...); a class it does not name is shown as itself."""
    import numpy as np
    from sklearn.metrics import confusion_matrix

    classes = list(labels) if labels is not None else sorted(set(np.asarray(y_true).tolist())
                                                             | set(np.asarray(y_pred).tolist()))
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    if names is not None and not hasattr(names, "get"):  # a sequence: class i is names[i]
        names = {i: name for i, name in enumerate(names)}
    shown = [str(names.get(c, c)) if names is not None else str(c) for c in classes]
    size = min(3.0 + 0.45 * len(classes), 12.0)
    fig, (ax,) = _figure(size, size * 0.85)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = range(len(classes))
    tilt = len(classes) > 6 or max(map(len, shown), default=0) > 8  # long names overlap
    ax.set_xticks(ticks, shown, rotation=45 if tilt else 0)
    ax.set_yticks(ticks, shown)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (validation)")
    if len(classes) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if count > threshold else "black", fontsize=8)
    return _log_and_show(fig, artifact_file)


def log_training_curve(history: dict[str, list[float]], artifact_file: str = "figures/training_curve.png"):
    """Plot each series of HISTORY (name -> one value per epoch) against the epoch, losses and
    the rest on two panels, log it to MLflow as ARTIFACT_FILE and show it; returns the Figure."""
    from matplotlib.ticker import MaxNLocator

    losses = {k: v for k, v in history.items() if "loss" in k.lower()}
    others = {k: v for k, v in history.items() if k not in losses}
    panels = [(title, series) for title, series in (("loss", losses), ("metrics", others)) if series]
    fig, axes = _figure(5.0 * max(len(panels), 1), 3.6, ncols=max(len(panels), 1))
    for ax, (title, series) in zip(axes, panels, strict=False):
        for name, values in series.items():
            ax.plot(range(1, len(values) + 1), [float(v) for v in values], label=name,
                    marker="." if len(values) < 40 else None)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    return _log_and_show(fig, artifact_file)
