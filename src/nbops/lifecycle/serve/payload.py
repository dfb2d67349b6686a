"""Request bodies of `nbops serve` -> a table shape: records, columns, MLflow's payloads.

Pure (no model, no HTTP): a parsed JSON body in, `(shape, data)` out, or a PayloadError whose
message names the field. `serve.py` turns the shape into the model's input.
"""

from __future__ import annotations

from typing import Any

from nbops.core.errors import InputError

# the body's keys nbops reads (MLflow's and its own), first found wins; see `decode`
PAYLOAD_KEYS = ("records", "columns", "dataframe_split", "dataframe_records", "inputs", "instances")


class PayloadError(InputError):
    """A request body nbops cannot read as a table; the message names the field. An InputError
    (so an NbopsError, and a ValueError as before)."""


def decode(payload: Any) -> tuple[str, Any]:
    """A parsed JSON body -> (shape, data), shape one of:
    records (list of objects), columns (name -> list of values), split ((names, rows)),
    rows (lists in the signature's column order)."""
    if isinstance(payload, list):
        return _listed(payload, "the body")
    if not isinstance(payload, dict):
        raise PayloadError("the body must be a JSON object (e.g. {\"records\": [...]}) or a list of records")
    key = next((k for k in PAYLOAD_KEYS if k in payload), None)
    if key is None:
        found = ", ".join(repr(k) for k in list(payload)[:5]) or "none"
        raise PayloadError(f"expected one of the keys {', '.join(PAYLOAD_KEYS)}; got {found}")
    value = payload[key]
    if key == "columns" and isinstance(value, list):
        return "split", _split(payload, "")
    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise PayloadError("'dataframe_split' must be an object with 'columns' and 'data'")
        return "split", _split(value, "dataframe_split.")
    if isinstance(value, dict):  # columns, inputs or instances as {name: values}
        return "columns", _columns(value, key)
    if isinstance(value, list):
        return _listed(value, f"'{key}'")
    raise PayloadError(f"'{key}' must be a list or an object, got {type(value).__name__}")


def _listed(items: list, where: str) -> tuple[str, Any]:
    if not items:
        raise PayloadError(f"{where} has no rows")
    if all(isinstance(item, dict) for item in items):
        return "records", items
    if all(isinstance(item, list) for item in items):
        return "rows", items
    raise PayloadError(f"{where} must be a list of records (objects) or of rows (lists)")


def _split(obj: dict, prefix: str) -> tuple[list[str], list]:
    names, rows = obj.get("columns"), obj.get("data")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise PayloadError(f"'{prefix}columns' must be a list of column names")
    if len(set(names)) != len(names):
        twice = next(n for i, n in enumerate(names) if n in names[:i])
        raise PayloadError(f"'{prefix}columns' names column '{twice}' more than once")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise PayloadError(f"'{prefix}data' must be a list of rows (lists)")
    if not rows:
        raise PayloadError(f"'{prefix}data' has no rows")
    return names, rows


def _columns(obj: dict, where: str) -> dict[str, list]:
    # MLflow accepts a scalar per column for one row; nbops does too
    out = {name: v if isinstance(v, list) else [v] for name, v in obj.items()}
    lengths = {len(v) for v in out.values()}
    if len(lengths) > 1:
        first = next(iter(out))
        odd = next(n for n, v in out.items() if len(v) != len(out[first]))
        raise PayloadError(f"'{where}': column '{odd}' has {len(out[odd])} values, "
                           f"'{first}' has {len(out[first])}")
    if not out or lengths == {0}:
        raise PayloadError(f"'{where}' has no rows")
    return out
