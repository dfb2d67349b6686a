"""The review's HTML folder: one copy of nbdime's web app shared by every page, and index.html.

Each notebook's page (review/htmlpage.py) holds only its diff and loads the app from
`nbdime-webapp-<version>.js` next to it, so a 100-notebook review is one ~4 MB bundle plus
pages the size of their notebooks' sources (an inlined app is ~4 MB per page).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from nbops.core.files import write_text_atomic
from nbops.core.sanitize import csp_meta
from nbops.review.judged import plain_lines

_JUDGED_LINES = 10  # per notebook in the index; its page and review.md have the rest

if TYPE_CHECKING:
    from nbops.review.changes import NotebookReview


def app_name() -> str:
    import nbdime

    return f"nbdime-webapp-{nbdime.__version__}.js"


def write_app(out: Path) -> str:
    """Write the shared web app bundle into OUT (once: an existing one is kept); its file name."""
    from nbops.review.htmlpage import webapp_bundle

    name = app_name()
    target = out / name
    if not target.is_file():
        write_text_atomic(target, webapp_bundle())  # two reviews at once: each writes whole
    return name


def _summary(r: NotebookReview) -> str:
    if r.change.error:
        return f"could not review: {r.change.error}"
    n = r.counts()
    text = f"{n['added']} cell(s) added, {n['removed']} removed, {n['modified']} modified"
    if r.parameters:
        text += "; parameters: " + ", ".join(r.parameters)
    return text


def _judged(r: NotebookReview) -> str:
    """What changed in how the notebook is judged (review/judged.py), a loosened gate as a risk."""
    if not r.judged:
        return ""
    e = html.escape
    items = "".join(f'<li class="risk">⚠ RISK {e(j.what)}: {e(j.text)}</li>' if j.risk
                    else f"<li>{e(j.what)}: {e(j.text)}</li>" for j in r.judged[:_JUDGED_LINES])
    if len(r.judged) > _JUDGED_LINES:
        items += f"<li>… and {len(r.judged) - _JUDGED_LINES} more: see its page</li>"
    return f'<div class="judged"><b>{e(plain_lines(r.judged)[0])}</b><ul>{items}</ul></div>'


def render_index(reviews: list[NotebookReview], base: str, head: str) -> str:
    """index.html: every changed notebook, its summary, committed outputs and a link to its page
    (no script at all, and a policy that lets none run and nothing load)."""
    e = html.escape
    rows = []
    for r in reviews:
        c = r.change
        name = f"{c.old_path} → {c.path}" if c.old_path else c.path
        link = f'<a href="{e(quote(r.html))}">{e(name)}</a>' if r.html else e(name)
        outputs = ("<br><b>committed outputs</b>: " + e("; ".join(r.outputs))) if r.outputs else ""
        rows.append(f"<tr><td>{link}</td><td>{e(c.status)}</td><td>{e(_summary(r))}{outputs}"
                    f"{_judged(r)}</td></tr>")
    page = "\n".join([
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"/>',
        csp_meta(),
        f"<title>nbops review: {len(reviews)} notebook(s)</title>",
        "<style>body{font-family:sans-serif} td{padding:2px 8px;vertical-align:top}"
        " tr:nth-child(even){background:#f4f4f4} .risk{color:#b00;font-weight:bold}"
        " .judged ul{margin:2px 0}</style></head><body>",
        f"<h2>nbops review: {len(reviews)} notebook(s) changed ({e(base)} → {e(head)})</h2>",
        '<table id="nbops-index"><tr><th>notebook</th><th>status</th><th>summary</th></tr>',
        *rows,
        "</table></body></html>",
    ])
    return page.encode("utf-8", "backslashreplace").decode("utf-8")
