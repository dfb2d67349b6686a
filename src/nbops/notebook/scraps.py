"""Read what `nbops.record` (or `scrapbook.glue`) wrote into an executed notebook."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from nbops.record import SCRAP_PREFIX

# MLflow accepts metric names of letters, digits and _ - . / : and spaces
_METRIC_NAME = re.compile(r"^[\w\-./: ]{1,250}$")


def read_records(nb: dict) -> dict[str, Any]:
    """Scraps by name, decoded like scrapbook's json and text encoders; a later one wins."""
    out: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            for mime, payload in (output.get("data") or {}).items():
                if not mime.startswith(SCRAP_PREFIX) or not isinstance(payload, dict):
                    continue
                name, data = payload.get("name"), payload.get("data")
                if not isinstance(name, str):
                    continue
                if payload.get("encoder") == "json" and isinstance(data, str):
                    try:
                        data = json.loads(data)
                    except ValueError:
                        pass
                out[name] = data
    return out


def split_metrics(records: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """Finite numbers with names MLflow accepts become metrics; everything else stays a record."""
    metrics, others = {}, {}
    for name, value in records.items():
        if (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and _METRIC_NAME.match(name)):
            metrics[name] = float(value)
        else:
            others[name] = value
    return metrics, others
