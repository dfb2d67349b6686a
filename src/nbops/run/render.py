"""What a person looks at in the MLflow UI: a run's name and the executed notebook as HTML.

`run_name` says what differed from the notebook's defaults (`wine_svm C=0.5`); `render_html`
renders an executed notebook with nbconvert's HTMLExporter (imported here, lazily: it is slow).

The page runs nothing of the notebook's and loads nothing (the MLflow UI shows it in a sandbox
that allows scripts): nbconvert's `sanitize_html` mode with our `clean_html` (core/sanitize.py,
ammonia) as its sanitiser, applied to each markdown cell, each HTML/markdown output and each raw
cell on its own, so an unclosed tag stays in its cell; JavaScript and widget outputs shown as
text; none of the template's scripts (require.js, MathJax, mermaid, the widget manager: each
from a CDN); and a Content-Security-Policy that forbids any script and any request.
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

# nbconvert's lab template, less every script it would load or write, with the policy first in
# <head>; JavaScript and widget outputs as their text (nbconvert would write them as <script>),
# mermaid source escaped (nbconvert writes it raw).
_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head -%}
CSP_META
{{ super() }}
{%- endblock html_head -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_javascript scoped -%}
<div class="jp-RenderedText jp-OutputArea-output {{ extra_class }}" data-mime-type="text/plain">
<pre>{{ output.data['application/javascript'] | e }}</pre>
</div>
{%- endblock data_javascript -%}
{%- block data_widget_view scoped -%}
<div class="jp-RenderedText jp-OutputArea-output {{ extra_class }}" data-mime-type="text/plain">
<pre>{{ output.data.get('text/plain', '(a widget: not shown in this page)') | e }}</pre>
</div>
{%- endblock data_widget_view -%}
{%- block data_mermaid scoped -%}
<div class="jp-RenderedText jp-OutputArea-output {{ extra_class }}" data-mime-type="text/plain">
<pre>{{ output.data['text/vnd.mermaid'] | e }}</pre>
</div>
{%- endblock data_mermaid -%}
"""


def _exporter(hide_input: bool) -> Any:
    """The process's HTMLExporter for HIDE_INPUT (call with _RENDER held)."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    from nbops.core.sanitize import clean_html, csp_meta

    exporter = _EXPORTERS.get(hide_input)
    if exporter is None:
        exporter = _EXPORTERS[hide_input] = HTMLExporter(
            exclude_input=hide_input, exclude_input_prompt=hide_input, exclude_output_prompt=hide_input,
            sanitize_html=True, filters={"clean_html": clean_html},
            extra_loaders=[DictLoader({"nbops-report.html.j2": _TEMPLATE.replace("CSP_META", csp_meta())})],
            template_file="nbops-report.html.j2")
    return exporter


def _inert(nb: Any) -> None:
    """What in NB (read from disk: anyone's) would load a file or a widget manager: gone."""
    nb.metadata.pop("widgets", None)  # the widget state nbconvert writes into the page
    for cell in nb.cells:
        for output in cell.get("outputs", ()):
            metadata = output.get("metadata")
            if metadata:  # `filenames`: images nbconvert would load from a path or URL
                metadata.pop("filenames", None)
            output.pop("svg_filename", None)


def render_html(notebook: Path, out_dir: Path, hide_input: bool = False, name: str = "") -> Path:
    """OUT_DIR/<NAME>.html (a run logs it as `notebook/<notebook's name>.html`, beside the executed
    `<time>-<id>.ipynb`; NAME defaults to NOTEBOOK's stem): the executed notebook as one
    self-contained HTML page (input cells left out when `hide_input`) that runs no script and
    loads nothing."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    _inert(nb)
    with _RENDER, warnings.catch_warnings():  # "mimetype ... not able to be represented": scrapbook's records
        warnings.simplefilter("ignore", UserWarning)
        body, _ = _exporter(hide_input).from_notebook_node(nb)
    path = out_dir / f"{name or notebook.stem}.html"
    path.write_text(body, encoding="utf-8")
    return path
