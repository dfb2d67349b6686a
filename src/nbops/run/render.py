"""What a person looks at in the MLflow UI: a run's name and the executed notebook as HTML.

`run_name` says what differed from the notebook's defaults (`wine_svm C=0.5`); `render_html`
renders an executed notebook with nbconvert's HTMLExporter (imported here, lazily: it is slow).
"""

from __future__ import annotations

import json
import threading
import warnings
from pathlib import Path
from typing import Any

from nbops.core.secrets import MASK

MAX_RUN_NAME = 120  # characters; MLflow shows far less in its table anyway


def _short(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def run_name(stem: str, overrides: dict[str, Any], defaults: dict[str, Any],
             secrets: tuple[str, ...] = (), limit: int = MAX_RUN_NAME) -> str:
    """`stem` plus `name=value` for each override that differs from its default (secrets masked),
    in the order given; cut at `limit` characters with an ellipsis. The plain stem when nothing
    differs."""
    parts = [f"{k}={MASK if k in secrets else _short(v)}"
             for k, v in overrides.items() if k not in defaults or defaults[k] != v]
    name = " ".join([stem, *parts])
    return name if len(name) <= limit else name[: limit - 1].rstrip() + "…"


_EXPORTERS: dict[bool, Any] = {}  # one HTMLExporter per hide_input: its templates compile once
_RENDER = threading.Lock()  # an exporter renders one notebook at a time


def _exporter(hide_input: bool) -> Any:
    """The process's HTMLExporter for HIDE_INPUT (call with _RENDER held)."""
    from nbconvert import HTMLExporter

    exporter = _EXPORTERS.get(hide_input)
    if exporter is None:
        exporter = _EXPORTERS[hide_input] = HTMLExporter(
            exclude_input=hide_input, exclude_input_prompt=hide_input, exclude_output_prompt=hide_input)
    return exporter


def render_html(notebook: Path, out_dir: Path, hide_input: bool = False) -> Path:
    """OUT_DIR/<notebook stem>.html: the executed notebook as one self-contained HTML page
    (input cells left out when `hide_input`)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    with _RENDER, warnings.catch_warnings():  # "mimetype ... not able to be represented": scrapbook's records
        warnings.simplefilter("ignore", UserWarning)
        body, _ = _exporter(hide_input).from_notebook_node(nb)
    path = out_dir / f"{notebook.stem}.html"
    path.write_text(body, encoding="utf-8")
    return path
