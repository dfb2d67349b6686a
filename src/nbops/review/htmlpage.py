"""A self-contained HTML page with nbdime's own side-by-side notebook diff, made without a server.

nbdime cannot export its HTML diff from the command line (jupyter/nbdime#468). Its web app asks
its server for `api/diff` and renders the answer; this page inlines the web app (every webpack
chunk as an inline script before `nbdime.js`, so nothing is fetched), the header markup of
nbdime's `templates/diff.html`, the `nbdime-config-data` it reads, and a few lines that answer the
app's `api/diff` request with the diff computed here in Python (`nbdime.diff_notebooks`).
"""

from __future__ import annotations

import html
import json
import re
from functools import lru_cache
from pathlib import Path

_HEADER = """<div id="nbdime-header" class="nbdime-Diff">
  <h3>{title}</h3>
  <form id="nbdime-diff-form" class="nbdime-forms" style="display: none">
    <input id="diff-base" type="text" name="base" value="{base}" />
    <input id="diff-remote" type="text" name="remote" value="{remote}" />
  </form>
  <div id="nbdime-header-buttonrow">
    <label><input id="nbdime-hide-unchanged" type="checkbox"></input>Hide unchanged cells</label>
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
# for good measure; U+2028/U+2029 end a line in older JavaScript. Each is written as a JSON escape,
# so JSON.parse / json.loads give back the exact text. They can only occur inside JSON strings.
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_UNSAFE = re.compile("[<>&\u2028\u2029]")
_JS_UNSAFE = re.compile(r"<(/script|!--)", re.IGNORECASE)


def script_json(value: object) -> str:
    """VALUE as JSON that is inert inside an inline <script> (no `<`, `>`, `&` at all)."""
    text = json.dumps(value, ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def _script_text(text: str) -> str:
    """nbdime's own JavaScript inline: its few `<!--` and `</script` are in string and regex
    literals, where `<\\/` and `<\\!` mean the same characters. Not for data (see script_json)."""
    return _JS_UNSAFE.sub(lambda m: "<\\" + m.group(1), text)


@lru_cache(maxsize=1)
def _webapp_scripts() -> str:
    """nbdime's web app: chunks first (they register with webpack's chunk list), then the entry."""
    import nbdime.webapp

    static = Path(nbdime.webapp.__file__).parent / "static"
    chunks = sorted(p for p in static.glob("*.nbdime.js") if p.name != "nbdime.js")
    parts = [f"<script>{_script_text(p.read_text(encoding='utf-8'))}</script>" for p in chunks]
    parts.append(f"<script>{_script_text((static / 'nbdime.js').read_text(encoding='utf-8'))}</script>")
    return "\n".join(parts)


def render_diff_page(base_nb: dict, head_nb: dict, base_label: str, head_label: str, title: str,
                     diff: list | None = None) -> str:
    """The page as a string. `diff` is nbdime's diff of the two notebooks (computed if None)."""
    if diff is None:
        from nbdime import diff_notebooks

        diff = diff_notebooks(base_nb, head_nb)
    config = {"base": base_label, "remote": head_label, "closable": False, "savable": False,
              "baseUrl": "/", "hideUnchanged": False, "collapseIdentical": 2}
    payload = script_json({"base": base_nb, "diff": diff})
    header = _HEADER.format(title=html.escape(title), base=html.escape(base_label),
                            remote=html.escape(head_label))
    return "\n".join([
        "<!DOCTYPE html>",
        "<html><head><meta charset=\"utf-8\"/>",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1.0\"/>",
        f"<title>{html.escape(title)}</title></head><body>",
        header,
        '<div id="nbdime-root" class="nbdime-root"></div>',
        f"<script id=\"nbdime-config-data\" type=\"application/json\">{script_json(config)}</script>",
        f"<script id=\"nbops-diff-data\" type=\"application/json\">{payload}</script>",
        f"<script>{_FETCH_SHIM}</script>",
        _webapp_scripts(),
        "<noscript>This diff needs JavaScript (nbdime's web app).</noscript>",
        "</body></html>",
    ])
