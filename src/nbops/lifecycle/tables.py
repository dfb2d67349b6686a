"""Table files read and written chunk by chunk: CSV through pandas' parser (only the model's
columns typed), Parquet through pyarrow batches; writers with one schema for a whole file."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from nbops.core.errors import DataError, first_line

# pandas' default missing-value markers (read_csv's documentation): they apply to the model's
# columns only, text columns keep "NA" or "null" as written
_NA_MARKERS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
               "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


def check_header(path: Path) -> None:
    """Refuse a CSV header naming a column twice: pandas would silently call the second one
    `NAME.1`, and the model would read the first one only."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
            header = next(csv.reader([f.readline(1 << 20)]), [])
    except (OSError, csv.Error):
        return  # the reader says what is wrong with the file, in its words
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise DataError(f"input {path}: column '{column}' appears more than once in the header",
                            hint="give each column its own name")
        seen.add(column)


def csv_chunks(path: Path, chunk_size: int, features: tuple[str, ...]) -> Generator[tuple[Any, int]]:
    """(DataFrame, bytes read so far). FEATURES (the signature's columns) are parsed; with a
    signature every other column stays text. Without one, types come from each chunk alone."""
    import pandas as pd

    check_header(path)
    with open(path, "rb") as handle:  # our own handle: its position is the progress
        try:
            options: dict[str, Any] = {}
            if features:
                header = pd.read_csv(handle, nrows=0).columns
                handle.seek(0)
                options = {"dtype": {c: str for c in header if c not in features},
                           "keep_default_na": False,
                           "na_values": {c: _NA_MARKERS for c in header if c in features}}
            # low_memory=False: the chunk is already our memory bound, and pandas' internal
            # sub-chunks would give a column mixed Python types that Arrow cannot convert
            for frame in pd.read_csv(handle, chunksize=chunk_size, low_memory=False, **options):
                yield frame, handle.tell()
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"input {path}: cannot read it as CSV: {exc}") from None


def parquet_chunks(path: Path, chunk_size: int) -> Generator[tuple[Any, int]]:
    """(RecordBatch, rows read so far); an empty file gives one empty batch, so the output
    still gets the input's columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(path)
        done = 0
        for batch in source.iter_batches(batch_size=chunk_size):
            done += batch.num_rows
            yield batch, done
        if done == 0:
            yield pa.RecordBatch.from_pylist([], schema=source.schema_arrow), 0
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"input {path}: cannot read it as Parquet: {exc}") from None


def progress_total(path: Path, fmt: str) -> int:
    if fmt == "csv":
        return path.stat().st_size
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception:  # noqa: BLE001 - the reader reports a bad file with a proper message
        return 0


# -- prediction columns ------------------------------------------------------------------------


class CsvWriter:
    """Appends chunks; each chunk may have its own column types, only the header is shared.
    Text is quoted only in chunks where some value needs it (Arrow's "needed" style quotes every
    string, which turns `00123` into `"00123"`)."""

    def __init__(self, path: str):
        self.file = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.started = False

    def write(self, table, where: str) -> None:
        import csv
        import io

        import pyarrow.csv as pacsv

        if not self.started:
            # Arrow quotes every header name; a header of plain names reads better
            header = io.StringIO()
            csv.writer(header, lineterminator="\n").writerow(table.column_names)
            self.file.write(header.getvalue().encode())
            self.started = True
        import pyarrow as pa

        quoting = "needed" if _needs_quotes(table) else "none"
        try:
            pacsv.write_csv(table, self.file, write_options=pacsv.WriteOptions(
                include_header=False, quoting_style=quoting))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:  # nested or odd columns
            raise DataError(f"{where}: cannot write this as CSV: {first_line(exc)}",
                             hint="write Parquet (--output FILE.parquet)") from None

    def close(self) -> None:
        self.file.close()


def _needs_quotes(table) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    for column in table.columns:
        if pa.types.is_dictionary(column.type):  # a categorical: check its values
            column = column.cast(column.type.value_type)
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        if pc.any(pc.match_substring_regex(column, r'[",\r\n]')).as_py():
            return True
    return False


class ParquetWriter:
    """One schema for the whole file: the first chunk's; later chunks are cast to it (for a
    model without a signature CSV columns are typed chunk by chunk: an int column with a missing
    value in a later chunk arrives as float, and casts back)."""

    def __init__(self, path: str):
        self.path = path
        self.writer: Any = None  # a pyarrow ParquetWriter once the first chunk is in

    def write(self, table, where: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        schema = self.writer.schema
        if not table.schema.equals(schema, check_metadata=False):
            try:
                table = table.cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
                first = next((f for f in table.schema if f.name not in schema.names
                              or schema.field(f.name).type != f.type), table.schema[0])
                was = schema.field(first.name).type if first.name in schema.names else "absent"
                raise DataError(
                    f"{where}: column '{first.name}' is {first.type} here but {was} in the first "
                    "chunk; a Parquet file has one type per column",
                    hint="give the column one type in the input, write CSV, or raise --chunk-size",
                ) from None
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# -- progress ----------------------------------------------------------------------------------
