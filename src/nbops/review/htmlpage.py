"""An HTML page with nbdime's own side-by-side notebook diff, made without a server.

nbdime cannot export its HTML diff from the command line (jupyter/nbdime#468). Its web app asks
its server for `api/diff` and renders the answer; this page holds the header markup of nbdime's
`templates/diff.html`, the `nbdime-config-data` it reads, the diff computed here in Python as
inline JSON, and a few lines that answer the app's `api/diff` request with it. The web app itself
is either inlined (a self-contained page) or one bundle file next to the pages, shared by every
page of a review (`webapp_bundle`: every webpack chunk, then `nbdime.js`; nothing is fetched
from the network either way).

Nothing of the notebooks' runs, and nothing loads from the network: nbdime renders markdown and
outputs untrusted (through JupyterLab's sanitiser), its "Trust outputs" and "Export diff" buttons
stay hidden, and a Content-Security-Policy lets only this page's own scripts run (the fetch shim
and an inlined app by their hashes; a bundle file next to the page by 'self'), with no request
anywhere and images only from data: URLs.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

_HEADER = """<div id="nbdime-header" class="nbdime-Diff">
  <h3>{title}</h3>
  <form id="nbdime-diff-form" class="nbdime-forms" style="display: none">
    <input id="diff-base" type="text" name="base" value="{base}" />
    <input id="diff-remote" type="text" name="remote" value="{remote}" />
  </form>
  {outputs}<div id="nbdime-header-buttonrow">
    <label><input id="nbdime-hide-unchanged" type="checkbox" checked></input>Hide unchanged cells</label>
    <button id="nbdime-trust" style="display: none">Trust outputs</button>
    <button id="nbdime-close" type="checkbox" style="display: none">Close tool</button>
    <button id="nbdime-export" type="checkbox" style="display: none">Export diff</button>
  </div>
  <div id="nbdime-header-banner" class="cm-merge-2pane">
    <span id="nbdime-header-base">{base}</span>
    <span id="nbdime-header-remote">{remote}</span>
  </div>
</div>"""

# Answer the web app's POST to api/diff from the data embedded in the page (no server).
_FETCH_SHIM = """
(function () {
  var data = JSON.parse(document.getElementById('nbops-diff-data').textContent);
  var realFetch = window.fetch ? window.fetch.bind(window) : null;
  window.fetch = function (input, init) {
    var url = typeof input === 'string' ? input : (input && input.url) || '';
    if (/api\\/diff(\\?|$)/.test(url)) {
      return Promise.resolve(new Response(JSON.stringify(data),
        {status: 200, headers: {'Content-Type': 'application/json'}}));
    }
    if (realFetch) { return realFetch(input, init); }
    return Promise.reject(new Error('nbops: offline page'));
  };
  // the app records base/remote in the address bar; a file:// page may not: ignore that
  var replace = history.replaceState.bind(history), push = history.pushState.bind(history);
  history.replaceState = function () { try { return replace.apply(null, arguments); } catch (e) {} };
  history.pushState = function () { try { return push.apply(null, arguments); } catch (e) {} };
})();
"""


# Characters that may not appear raw in an inline <script>'s JSON: `<` could start `</script>` (in
# any letter case) or `<!--` (which makes the HTML tokenizer skip a later `</script>`); `>` and `&`
# for good measure; U+2028/U+2029 end a line in older JavaScript; a lone surrogate (JSON text may
# hold "\\ud800") cannot be written as UTF-8. Each is written as a JSON escape, so JSON.parse /
# json.loads give back the exact text. They can only occur inside JSON strings.
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029\ud800-\udfff]")
_JS_UNSAFE = re.compile(r"<(/script|!--)", re.IGNORECASE)


def script_json(value: object) -> str:
    """VALUE as JSON that is inert inside an inline <script> (no `<`, `>`, `&` at all)."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _script_text(text: str) -> str:
    """nbdime's own JavaScript inline: its few `<!--` and `</script` are in string and regex
    literals, where `<\\/` and `<\\!` mean the same characters. Not for data (see script_json).
    Line ends as LF (the HTML parser would make a CR one, and the policy's hash is of the text)."""
    return _JS_UNSAFE.sub(lambda m: "<\\" + m.group(1), text.replace("\r\n", "\n").replace("\r", "\n"))


def _hash(script: str) -> str:
    """The policy's source expression that lets exactly this inline script run."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


def _static() -> tuple[list[Path], Path]:
    """nbdime's web app: its chunks (they register with webpack's chunk list) and its entry."""
    import nbdime.webapp

    static = Path(nbdime.webapp.__file__).parent / "static"
    return sorted(p for p in static.glob("*.nbdime.js") if p.name != "nbdime.js"), static / "nbdime.js"


@lru_cache(maxsize=1)
def _webapp_script() -> tuple[str, str]:
    """The web app as one inline script (the bundle's text), and its hash."""
    text = _script_text(webapp_bundle())
    return f"<script>{text}</script>", _hash(text)


def webapp_bundle() -> str:
    """nbdime's web app as one script file: each chunk (strict mode, as written) in a function of
    its own, then the entry as it is (its mode unchanged), in the order the inline page uses."""
    chunks, entry = _static()
    parts = [f"(function () {{\n{p.read_text(encoding='utf-8')}\n}})();" for p in chunks]
    return "\n".join([*parts, entry.read_text(encoding="utf-8")])


# nbdime shows these once its app runs: trusting outputs would run their scripts; the export
# writes a page of its own; closing asks a server. None of them here.
_HIDE = "<style>#nbdime-trust,#nbdime-export,#nbdime-close{display:none !important}</style>"


def csp(app_hash: str | None) -> str:
    """The page's policy: its fetch shim and the app (inline: APP_HASH; else the bundle file by
    'self') run, nothing else; no request; images only from data: URLs; inline styles (the app's)."""
    scripts = " ".join([_hash(_FETCH_SHIM), app_hash or "'self'"])
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; "
            "font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-src 'none'; object-src 'none'")


def without_undefined_ids(base_nb: dict, diff: list) -> tuple[dict, list]:
    """BASE_NB and DIFF with `"id": null` on each cell that has no id and whose id the diff does
    not change (copies; the inputs are left as they are). nbdime's app labels every cell
    "Cell ID: <id>" unless its id is null, so a notebook without ids (nbformat < 4.5) showed
    "Cell ID: undefined" on its cells (issue 26). A cell whose id the diff adds keeps no key:
    nbdime checks that an added value was absent before."""
    ops = next((d.get("diff") or [] for d in diff if d.get("key") == "cells"), [])
    id_changed = {op["key"] for op in ops if op.get("op") == "patch"
                  and any(d.get("key") == "id" for d in op.get("diff") or [])}
    base = {**base_nb, "cells": [c if "id" in c or i in id_changed else {**c, "id": None}
                                 for i, c in enumerate(base_nb.get("cells") or [])]}
    new_ops = [{**op, "valuelist": [c if not isinstance(c, dict) or "id" in c else {**c, "id": None}
                                    for c in op["valuelist"]]} if op.get("op") == "addrange" else op
               for op in ops]
    return base, [{**d, "diff": new_ops} if d.get("key") == "cells" else d for d in diff]


def whole_metadata_values(head_nb: dict, diff: list) -> list:
    """DIFF (a copy) whose notebook-level metadata changes replace each changed key's whole value
    (a key added or removed stays as it is). nbdime's app (4.0) fails on a patch nested inside
    them, such as a gate edited in metadata.nbops.model.gates: "Invalid line number" in CodeMirror,
    and the page showed no diff at all, on the very change the judged block above calls a risk."""
    metadata = head_nb.get("metadata") or {}

    def flat(op: dict) -> dict:
        if op.get("op") == "patch" and op.get("key") in metadata:
            return {"op": "replace", "key": op["key"], "value": metadata[op["key"]]}
        return op

    return [{**d, "diff": [flat(op) for op in d.get("diff") or []]} if d.get("key") == "metadata" else d
            for d in diff]


_CHANGES_STYLE = ("<style>#nbops-changes{border:1px solid #999;padding:4px 8px;margin:4px 0}"
                  "#nbops-changes pre{margin:2px 0 8px;font-size:12px;white-space:pre-wrap}"
                  "#nbops-changes .a{background:#cfc}#nbops-changes .r{background:#fcc}</style>")
_LINE_CLASS = {"+": "a", "-": "r"}
_CHANGES_LINES = 400  # in the static summary; every line is in nbdime's diff below it


def _changes_block(changes: Sequence[tuple[str, str]], judged: Sequence[str]) -> str:
    """The changed cells as plain HTML, shown at once above nbdime's diff (which needs its app to
    run and, for a long notebook, some seconds), and what changed in how it is judged."""
    e = html.escape
    parts: list[str] = []
    if judged:
        items = "".join(f"<li>{e(line)}</li>" for line in judged)
        parts.append(f'<div id="nbops-judged"><b>What changed in how this notebook is judged</b><ul>{items}</ul></div>')
    lines_left = _CHANGES_LINES
    for label, text in changes:
        lines = text.splitlines()
        shown, lines_left = lines[: max(lines_left, 0)], lines_left - len(lines)
        rows = [f'<span class="{_LINE_CLASS.get(line[:1], "c")}">{e(line)}</span>' for line in shown]
        if len(shown) < len(lines):
            rows.append(f"… {len(lines) - len(shown)} more line(s): see the side-by-side diff below")
        parts.append(f"<b>{e(label)}</b><pre>{chr(10).join(rows)}</pre>")
    if not changes and not judged:
        return ""
    title = f"Changed cells ({len(changes)})" if changes else "No cell's source changed"
    return (f'{_CHANGES_STYLE}<details id="nbops-changes" open><summary><b>{title}</b>: at a glance; '
            "nbdime's side-by-side diff follows</summary>" + "".join(parts) + "</details>\n  ")


def render_diff_page(base_nb: dict, head_nb: dict, base_label: str, head_label: str, title: str,
                     diff: list | None = None, app: str | None = None, outputs: list[str] | tuple = (),
                     changes: Sequence[tuple[str, str]] = (), judged: Sequence[str] = ()) -> str:
    """The page as a string. `diff` is nbdime's diff of the two notebooks (computed if None); `app`
    the file name of the shared web app bundle (`webapp_bundle`) next to the page, else inlined;
    `outputs` lines about committed outputs, shown above the diff; `changes` (label, unified diff)
    per changed cell and `judged` lines (review/judged.py), shown first as plain HTML."""
    if diff is None:
        from nbops.review.largecells import diff_notebooks_bounded

        diff = diff_notebooks_bounded(base_nb, head_nb)[0]
    config = {"base": base_label, "remote": head_label, "closable": False, "savable": False,
              "baseUrl": "/", "hideUnchanged": True, "collapseIdentical": 2}
    shown_base, shown_diff = without_undefined_ids(base_nb, whole_metadata_values(head_nb, diff))
    payload = script_json({"base": shown_base, "diff": shown_diff})
    banner = _changes_block(changes, judged)
    if outputs:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in outputs)
        banner += ('<div id="nbops-outputs" style="border:2px solid #d33;padding:4px 8px;margin:4px 0">'
                   f"<b>Committed outputs at head</b> (not shown in the diff below):<ul>{items}</ul></div>\n  ")
    header = _HEADER.format(title=html.escape(title), base=html.escape(base_label),
                            remote=html.escape(head_label), outputs=banner)
    if app is None:
        scripts, app_hash = _webapp_script()
    else:
        scripts, app_hash = f'<script src="{html.escape(app)}"></script>', None
    page = "\n".join([
        "<!DOCTYPE html>",
        "<html><head><meta charset=\"utf-8\"/>",
        f'<meta http-equiv="Content-Security-Policy" content="{html.escape(csp(app_hash))}">',
        _HIDE,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\"/>",
        f"<title>{html.escape(title)}</title></head><body>",
        '<p><a href="index.html">all notebooks of this review</a></p>' if app is not None else "",
        header,
        '<div id="nbdime-root" class="nbdime-root"></div>',
        f"<script id=\"nbdime-config-data\" type=\"application/json\">{script_json(config)}</script>",
        f"<script id=\"nbops-diff-data\" type=\"application/json\">{payload}</script>",
        f"<script>{_FETCH_SHIM}</script>",
        scripts,
        "<noscript>This diff needs JavaScript (nbdime's web app).</noscript>",
        "</body></html>",
    ])
    return page.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate in a label
