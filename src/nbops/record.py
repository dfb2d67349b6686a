"""`nbops.record(name, value)`: the kernel-side recorder.

It writes a scrap in scrapbook's display-data format, so `scrapbook.read_notebook(path).scraps`
reads it, without importing scrapbook, papermill or nbformat (each costs seconds). IPython is
already loaded inside a kernel; outside one, records are kept in `LOCAL` and nothing is shown.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

SCRAP_PREFIX = "application/scrapbook.scrap."
SCRAP_VERSION = 1
LOCAL: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tuples and sets to JSON-friendly Python values."""
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalar or array
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return value


def encode(name: str, value: Any) -> tuple[dict, dict]:
    """The (data, metadata) pair of one scrap, as IPython's `display(..., raw=True)` takes it."""
    if not isinstance(name, str) or not name:
        raise ValueError("nbops.record: name must be a non-empty string")
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)  # JSON has no NaN/inf; scrapbook's schema has no null either
    if isinstance(value, str):
        encoder = "text"
    else:
        encoder = "json"
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise TypeError(
                f"nbops.record({name!r}): {type(value).__name__} is not JSON-serialisable; "
                "record numbers, strings, lists or dicts"
            ) from None
        if value is None:
            raise TypeError(f"nbops.record({name!r}): None cannot be recorded")
    payload = {"name": name, "data": value, "encoder": encoder, "version": SCRAP_VERSION}
    data = {f"{SCRAP_PREFIX}{encoder}+json": payload}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    return data, metadata


def record(name: str, value: Any) -> None:
    """Record a result (a metric, a digest, a small dict) in the executed notebook."""
    data, metadata = encode(name, value)
    LOCAL[name] = data[next(iter(data))]["data"]
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None
    if shell is None or not hasattr(shell, "kernel"):
        return
    from IPython.display import display

    display(data, metadata=metadata, raw=True)
