"""Notebook HTML made inert: what the run report (run/render.py) and the review pages show.

A notebook's markdown and its HTML outputs are written by whoever wrote the notebook (or by any
library it ran). `clean_html` passes one cell's (or one output's) HTML through ammonia (`nh3`, a
maintained allow-list sanitiser): no script, no event handler, no `javascript:` or `data:` link,
no frame, form, `<style>` or `<svg>`, and images only from `data:` URLs (nothing is fetched). It
parses each fragment on its own and writes it back balanced, so an unclosed `<style>`,
`<textarea>` or `<!--` in one cell is contained to that cell. `CSP` is the page-wide backstop:
a policy that lets no script run and nothing load from anywhere (`csp_meta` puts it in a page).
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import Any

# Pages made from notebooks: no script at all, no request anywhere (images and fonts only from
# data: URLs), inline styles only (the report's theme is inline CSS), no <base>, no form posts.
CSP = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'; frame-src 'none'; object-src 'none'")

_EXTRA_TAGS = {"tfoot", "caption"}
# dropped with everything inside them (not only the tag): their content is code, CSS or a document
_DROP_WITH_CONTENT = {"script", "style", "template", "iframe", "object", "embed", "noscript",
                      "noembed", "noframes", "xmp", "title", "svg", "math", "select"}
# style="" on any tag, these properties only: no url(), no position (nothing laid over other cells)
_STYLE_PROPERTIES = {
    "color", "background-color", "text-align", "vertical-align", "font-weight", "font-style",
    "font-size", "font-family", "text-decoration", "white-space", "width", "max-width", "min-width",
    "height", "border", "border-collapse", "border-color", "border-style", "border-width",
    "border-top", "border-bottom", "border-left", "border-right", "padding", "padding-left",
    "padding-right", "padding-top", "padding-bottom", "margin", "margin-left", "margin-right",
    "margin-top", "margin-bottom", "line-height", "text-indent", "list-style-type",
}
_URL_SCHEMES = {"http", "https", "mailto", "data"}  # data: for images only (see _attribute)


def csp_meta(policy: str = CSP) -> str:
    """The <meta http-equiv> element that applies POLICY to the page (first thing in <head>)."""
    return f'<meta http-equiv="Content-Security-Policy" content="{html.escape(policy)}">'


def _attribute(tag: str, name: str, value: str) -> str | None:
    """Keep an image's src only when it is a data: image (nothing fetched); no data: link."""
    lowered = value.strip().lower()
    if name == "src":
        return value if tag == "img" and lowered.startswith("data:image/") else None
    if name == "href" and lowered.startswith("data:"):
        return None
    return value


@lru_cache(maxsize=1)
def _cleaner() -> Any:
    import nh3

    attributes = {tag: set(names) for tag, names in nh3.ALLOWED_ATTRIBUTES.items()}
    attributes["*"] = {"class", "id", "title", "style", "lang", "dir"}
    attributes["table"] = attributes.get("table", set()) | {"border"}  # pandas' DataFrame tables
    attributes["th"] = attributes.get("th", set()) | {"colspan", "rowspan"}
    return nh3.Cleaner(
        tags=(set(nh3.ALLOWED_TAGS) | _EXTRA_TAGS) - _DROP_WITH_CONTENT,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=attributes,
        attribute_filter=_attribute,
        url_schemes=_URL_SCHEMES,
        filter_style_properties=_STYLE_PROPERTIES,
        strip_comments=True,
    )


def clean_html(fragment: str | bytes) -> str:
    """FRAGMENT (one cell's or one output's HTML) with nothing that runs, loads or leaks out."""
    text = fragment.decode("utf-8", "replace") if isinstance(fragment, bytes) else str(fragment)
    return str(_cleaner().clean(text))
