"""`nbops predict`: one registered model version over a CSV or Parquet file, chunk by chunk.

    input --(pandas' chunked CSV parser | pyarrow Parquet batches)--> chunk
      --LoadedModel.frame (signature check)--> LoadedModel.predict --> chunk + prediction columns
      + model_version --(pyarrow CSV / ParquetWriter)--> temp file beside the output
    all chunks done --> sidecar `<output>.json` --> both moved into place (os.replace)

Memory stays at one chunk. Any error removes the temp files, so an output and its sidecar exist
only when every row was predicted. Columns the model does not read pass through untouched: from
Parquet with their types, from CSV as the text they were (an id "00123" or a 20-digit number must
come out as it went in, to join the predictions back), so only the model's own columns are parsed.
Writing goes through pyarrow: pandas' `to_csv` formats floats in Python and took 2.1 s of a 2.4 s
run on 200,000 rows (pyarrow: 0.2 s).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbops.core.config import Settings
from nbops.core.errors import ConfigError, DataError, ModelError, first_line
from nbops.core.files import FORMATS, temp_beside
from nbops.lifecycle.tables import (
    CsvWriter,
    ParquetWriter,
    check_header,
    csv_chunks,
    parquet_chunks,
    progress_total,
)

PREDICTION = "prediction"
VERSION_COLUMN = "model_version"
PROBA = "proba_"  # --proba: one `proba_<class>` column per class


@dataclass(frozen=True)
class PredictResult:
    rows: int
    model: str  # "clf/1 (champion)"
    output: Path
    name: str
    version: str
    aliases: tuple[str, ...]
    run_id: str
    sidecar: Path  # <output>.json: what produced the output
    chunks: int
    duration: float  # seconds, resolving and loading the model included
    load_seconds: float = 0.0  # of which resolving and loading the model
    prediction_columns: tuple[str, ...] = ()  # the columns the model's output became

    @property
    def rows_per_second(self) -> float:
        """Throughput once the model is loaded: reading, checking, predicting, writing."""
        seconds = self.duration - self.load_seconds
        return self.rows / seconds if seconds > 0 else 0.0


def file_format(path: Path, role: str) -> str:
    """'csv' or 'parquet' from the file's extension."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{role} {path}: unknown file type '{path.suffix or '(none)'}'",
                         hint="use a .csv or .parquet file")
    return fmt


def check_paths(input: Path, output: Path) -> tuple[str, str]:
    """(input format, output format); raises before any model is loaded (that costs seconds)."""
    in_fmt, out_fmt = file_format(input, "input"), file_format(output, "output")
    if not input.is_file():
        raise DataError(f"input {input} does not exist" if not input.exists() else
                         f"input {input} is not a file", hint="--input takes a .csv or .parquet file")
    if output.is_dir():
        raise DataError(f"output {output} is a folder", hint="--output takes a file name")
    if output.resolve() == input.resolve() or (output.exists() and os.path.samefile(output, input)):
        raise DataError(f"output {output} is the input file",
                         hint="write the predictions to another file")
    return in_fmt, out_fmt


def sidecar_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")


def model_label(version) -> str:
    aliases = f" ({', '.join(version.aliases)})" if version.aliases else ""
    return f"{version.name}/{version.version}{aliases}"


def _rows(start: int, n: int) -> str:
    return f"rows {start + 1}-{start + n}" if n else f"row {start + 1}"


# -- reading -----------------------------------------------------------------------------------
def prediction_columns(pred, n: int) -> dict[str, Any]:
    """Column name -> values: `prediction` for 1-D output (or one column), `prediction_<i>` for a
    2-D array, a DataFrame's own column names when it has several."""
    import numpy as np
    import pandas as pd

    if isinstance(pred, pd.Series):
        pred = pred.to_numpy()
    if isinstance(pred, pd.DataFrame):
        if pred.shape[1] == 1:
            columns = {PREDICTION: pred.iloc[:, 0].to_numpy()}
        elif all(isinstance(c, str) for c in pred.columns):
            columns = {c: pred[c].to_numpy() for c in pred.columns}
        else:
            columns = {f"{PREDICTION}_{i}": pred.iloc[:, i].to_numpy() for i in range(pred.shape[1])}
    else:
        array = np.asarray(pred)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 1:
            columns = {PREDICTION: array}
        elif array.ndim == 2:
            columns = {f"{PREDICTION}_{i}": array[:, i] for i in range(array.shape[1])}
        else:
            raise ModelError(f"the model returned {array.ndim}-D predictions",
                             hint="nbops predict writes 1-D or 2-D output as columns")
    for values in columns.values():
        if len(values) != n:
            raise ModelError(f"the model returned {len(values)} predictions for {n} rows")
    return columns


def _repeat(value: str, n: int):
    """A constant string column without building a Python list of N items."""
    import pyarrow as pa

    return pa.repeat(pa.scalar(value, pa.string()), n)


def _features(loaded, chunk):
    """The pandas frame the model sees: from a Parquet batch only the signature's columns."""
    import pyarrow as pa

    if not isinstance(chunk, pa.RecordBatch):
        return chunk
    wanted = [c.name for c in loaded.columns if c.name in chunk.schema.names]
    return (chunk.select(wanted) if loaded.columns else chunk).to_pandas()


def _table(chunk, frame, extra: dict[str, Any], where: str):
    """The chunk as an Arrow table with the prediction columns appended; a CSV chunk's model
    columns as FRAME has them (the signature's types: the same in every chunk)."""
    import pyarrow as pa

    if isinstance(chunk, pa.RecordBatch):
        table = pa.Table.from_batches([chunk])
    else:
        if frame is not chunk:
            chunk = chunk.assign(**{str(c): frame[c] for c in frame.columns})
        try:
            # pandas metadata would describe this chunk's dtypes only: leave it out
            table = pa.Table.from_pandas(chunk, preserve_index=False).replace_schema_metadata(None)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"{where}: {exc}") from None
    clash = [name for name in extra if name in table.column_names]
    if clash:
        raise DataError(f"{where}: the input already has a column '{clash[0]}'",
                         hint="rename or drop it; nbops predict adds it")
    for name, values in extra.items():
        table = table.append_column(name, values if isinstance(values, pa.Array) else pa.array(values))
    return table


# -- writing -----------------------------------------------------------------------------------
class _Bar:
    """A rich progress bar on stderr, by bytes (CSV) or rows (Parquet); nothing off a terminal."""

    def __init__(self, enabled: bool, total: int, unit: str, label: str):
        self.progress = None
        if not enabled or not total or not sys.stderr.isatty():
            return
        import rich.progress as rp
        from rich.console import Console

        amount = rp.DownloadColumn() if unit == "bytes" else rp.MofNCompleteColumn()
        self.progress = rp.Progress(rp.TextColumn("{task.description}"), rp.BarColumn(), amount,
                                    rp.TimeRemainingColumn(), console=Console(file=sys.stderr),
                                    transient=True)
        self.task = self.progress.add_task(label, total=total)
        self.progress.start()

    def update(self, position: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=position)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


# -- the command -------------------------------------------------------------------------------
@contextlib.contextmanager
def _kept_for_good():
    """Loading a model imports ~2,000 modules (scikit-learn, scipy, pandas) whose objects live as
    long as the process: no cyclic garbage collection while they are made (each full one walks
    all of them, ~0.2 s in all), then they are frozen (`gc.freeze`) so that later collections and
    the interpreter's exit skip them (~0.3 s tearing them down otherwise)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # before enabling: the first collection would walk all of them once more
        if was:
            gc.enable()


def proba_columns(loaded, frame, n: int) -> dict[str, Any]:
    """`proba_<class>` -> that class's probability for each row (float64; empty for no rows)."""
    import numpy as np

    classes = loaded.classes or ()
    matrix = loaded.predict_proba(frame) if n else np.zeros((0, len(classes)))
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (n, len(classes)):
        raise ModelError(f"{loaded.label}'s predict_proba returned shape {matrix.shape} for {n} rows "
                         f"and {len(classes)} classes")
    return {f"{PROBA}{c}": matrix[:, i] for i, c in enumerate(classes)}


def _check_proba(loaded) -> None:
    if loaded.classes is None:
        raise ModelError(f"--proba: {model_label(loaded.version)} gives no class probabilities "
                         f"(its model has no predict_proba)",
                         hint="drop --proba; an SVC has them only with probability=True, a regressor never")


def predict_file(settings: Settings, ref: str, input: Path, output: Path,
                 chunk_size: int = 50_000, progress: bool = False, proba: bool = False,
                 say: Callable[[str], None] | None = None) -> PredictResult:
    """Predict every row of INPUT with model REF (NAME = its champion, NAME@ALIAS, NAME/VERSION)
    into OUTPUT (the input's columns, the prediction columns, with PROBA one `proba_<class>`
    column per class, `model_version`) and its sidecar. SAY is told what happens once the
    input, the output and REF are checked (before the model loads: seconds)."""
    from nbops.lifecycle import models as models
    from nbops.lifecycle.registry import Registry
    from nbops.notebook.inputs import file_digest

    start = time.monotonic()
    if chunk_size < 1:
        raise ConfigError(f"chunk size must be at least 1, got {chunk_size}")
    input, output = Path(input), Path(output)
    in_fmt, out_fmt = check_paths(input, output)
    if in_fmt == "csv":
        check_header(input)  # a column named twice: before the model loads
    sidecar = sidecar_path(output)
    temps: list[str] = []
    try:
        try:  # before the model loads (seconds): a folder we cannot write in fails at once
            output.parent.mkdir(parents=True, exist_ok=True)
            temps += [temp_beside(output), temp_beside(sidecar)]
        except OSError as exc:
            raise DataError(f"cannot write in {output.parent}: {exc.strerror or exc}") from None
        tmp, side_tmp = temps
        version = Registry(settings).resolve(ref)
        if say:
            say(f"predicting {input} with {model_label(version)} into {output}")
        with _kept_for_good():
            loaded = models.load(version)
        if proba:
            _check_proba(loaded)
        loaded_at = time.monotonic()
        digest = file_digest(input)
        rows, chunks, columns, predicted = _predict_chunks(loaded, input, in_fmt, tmp, out_fmt,
                                                           chunk_size, progress, proba)
        result = PredictResult(
            rows=rows, model=model_label(version), output=output, name=version.name,
            version=version.version, aliases=tuple(version.aliases), run_id=version.run_id,
            sidecar=sidecar, chunks=chunks, duration=time.monotonic() - start,
            load_seconds=loaded_at - start, prediction_columns=tuple(predicted))
        meta = _sidecar(result, loaded, ref, input, in_fmt, digest, out_fmt, columns, chunk_size)
        Path(side_tmp).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, output)
        try:
            os.replace(side_tmp, sidecar)
        except BaseException:
            output.unlink(missing_ok=True)  # an output without its sidecar is half the result
            raise
    except BaseException:
        for path in temps:
            Path(path).unlink(missing_ok=True)
        raise
    return result


def _sidecar(result: PredictResult, loaded, ref: str, input: Path, in_fmt: str, digest: str,
             out_fmt: str, columns: list[str], chunk_size: int) -> dict[str, Any]:
    """What `<output>.json` says: which model version made the output, from which input."""
    from nbops import __version__

    version = loaded.version
    return {
        "model": {"ref": ref, "name": version.name, "version": version.version,
                  "aliases": list(version.aliases), "run_id": version.run_id,
                  "source": version.source, "uri": version.uri, "flavor": loaded.flavor},
        "input": {"path": str(input.resolve()), "format": in_fmt, "sha256": digest,
                  "bytes": input.stat().st_size},
        "output": {"path": str(result.output.resolve()), "format": out_fmt, "columns": columns,
                   "prediction_columns": list(result.prediction_columns)},
        "rows": result.rows, "chunks": result.chunks, "chunk_size": chunk_size,
        "duration_s": round(result.duration, 3), "load_model_s": round(result.load_seconds, 3),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "nbops_version": __version__,
    }


def _predict_chunks(loaded, input: Path, in_fmt: str, tmp: str, out_fmt: str, chunk_size: int,
                    progress: bool, proba: bool = False) -> tuple[int, int, list[str], list[str]]:
    """Read, check, predict and write chunk by chunk into TMP:
    (rows, chunks, output columns, prediction columns)."""
    from nbops.lifecycle.models import InputError

    label = model_label(loaded.version)
    features = tuple(c.name for c in loaded.columns)
    reader = (csv_chunks(input, chunk_size, features) if in_fmt == "csv"
              else parquet_chunks(input, chunk_size))
    writer = CsvWriter(tmp) if out_fmt == "csv" else ParquetWriter(tmp)
    bar = _Bar(progress, progress_total(input, in_fmt), "bytes" if in_fmt == "csv" else "rows",
               f"{label} {input.name}")
    rows = chunks = 0
    columns: list[str] = []
    predicted: list[str] = []
    try:
        for chunk, position in reader:
            n = len(chunk)
            where = f"input {input}: {_rows(rows, n)}"
            try:
                frame = loaded.frame(_features(loaded, chunk))
            except InputError as exc:
                raise DataError(f"{where}: {exc}") from None
            if n:
                try:
                    pred = loaded.predict(frame)
                except Exception as exc:  # noqa: BLE001 - the model's own code, failing on these rows
                    raise ModelError(f"{where}: {label} could not predict: {type(exc).__name__}: "
                                     f"{first_line(exc)}") from None
            else:  # an empty input: models refuse zero rows; the output still gets its columns
                pred = []
            extra = prediction_columns(pred, n)
            if proba:
                extra.update(_probabilities(loaded, frame, n, where, label))
            predicted = predicted or list(extra)
            extra[VERSION_COLUMN] = _repeat(loaded.version.version, n)
            table = _table(chunk, frame, extra, where)
            writer.write(table, where)
            columns = columns or table.column_names
            rows, chunks = rows + n, chunks + 1
            bar.update(position)
    finally:
        reader.close()
        writer.close()
        bar.close()
    return rows, chunks, columns, predicted


def _probabilities(loaded, frame, n: int, where: str, label: str) -> dict[str, Any]:
    try:
        return proba_columns(loaded, frame, n)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own code, failing on these rows
        raise ModelError(f"{where}: {label} could not give probabilities: {type(exc).__name__}: "
                         f"{first_line(exc)}") from None
