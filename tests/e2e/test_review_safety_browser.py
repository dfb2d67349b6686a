"""The offline review page of a notebook with hostile cells, opened in headless Chromium (Debian's,
driven by Playwright, as in test_review_browser.py): no script of the notebook's runs, the diff
renders."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from nbops.review.htmlpage import render_diff_page
from tests.browser import chromium, needs_chromium, watched_page

pytestmark = needs_chromium

HOSTILE = [
    "</SCRIPT><img src=x onerror=alert(1)>",
    "s = '</script><script>alert(2)</script>'",
    "<!-- <script> --> </script><img src=x onerror=alert(3)>",
    "<script>alert(4)</script>",
    "u = 'line\u2028separator'",
]


def _notebook(sources: list[str]) -> dict:
    cells = [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "source": s,
              "outputs": [], "execution_count": None} for i, s in enumerate(sources)]
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                          "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def _template_scripts() -> int:
    """How many <script> elements the page has with harmless content."""
    count = []
    parser = HTMLParser()
    parser.handle_starttag = lambda tag, attrs: count.append(tag) if tag == "script" else None  # type: ignore[method-assign]
    parser.feed(render_diff_page(_notebook(["a"]), _notebook(["b"]), "base", "head", "title"))
    return len(count)


@pytest.mark.timeout(60)
def test_hostile_notebook_page_runs_no_injected_script_and_renders(tmp_path):
    base = _notebook([*HOSTILE, "print('the old line')"])
    head = _notebook([*HOSTILE, "print('the new line')"])
    page_path = tmp_path / "hostile.html"
    page_path.write_text(render_diff_page(base, head, "base <img src=x onerror=alert(5)>",
                                          "head </script>", "PR </title><script>alert(6)</script>"),
                         encoding="utf-8")

    with chromium() as browser:
        page, dialogs, errors = watched_page(browser)
        page.goto(page_path.as_uri())
        page.wait_for_selector(".jp-Cellrow-source", state="attached", timeout=20_000)
        page.uncheck("#nbdime-hide-unchanged")  # show every cell, hostile ones included
        page.wait_for_timeout(500)  # an onerror handler would have fired by now
        text = page.inner_text("#nbdime-root")
        injected = page.evaluate("document.querySelectorAll('img, svg[onload], [onerror]').length")
        scripts = page.evaluate("document.scripts.length")
    assert dialogs == []
    assert errors == []
    assert injected == 0
    assert scripts == _template_scripts()  # the template's own, no more
    assert "print('the old line')" in text and "print('the new line')" in text
    assert "</SCRIPT><img src=x onerror=alert(1)>" in text  # shown as text


ANY_TEXT = [
    "<!-- a comment --> print('after the comment')",
    "<!--[if IE]><script>alert(7)</script><![endif]-->",
    "s = '</script><img src=x onerror=alert(8)>'",
    "u = 'line\u2028sep\u2029para'",
    "lone = '\ud800 surrogate'",
    "emoji = '🎉 naïve ✓'",
]


@pytest.mark.timeout(120)
def test_a_review_of_any_text_renders_in_chromium_with_no_injected_element(project):
    import json

    from nbops.cli.main import main
    from tests.conftest import commit_all

    path = project / "notebooks" / "any.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(_notebook([*ANY_TEXT, "print('the old line')"])))
    commit_all(project, "base")
    path.write_text(json.dumps(_notebook([*ANY_TEXT, "print('the new line')"])))
    commit_all(project, "head")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0

    with chromium() as browser:
        page, dialogs, errors = watched_page(browser)
        page.goto((project / "D" / "notebooks__any.ipynb.html").as_uri())
        page.wait_for_selector(".jp-Cellrow-source", state="attached", timeout=30_000)
        page.uncheck("#nbdime-hide-unchanged")  # show every cell, hostile ones included
        page.wait_for_timeout(500)
        text = page.inner_text("#nbdime-root")
        body = page.inner_text("body")
        injected = page.evaluate("document.querySelectorAll('img, svg[onload], [onerror]').length")
    assert "Failed to fetch" not in body and errors == [] and dialogs == []
    assert injected == 0
    assert "print('the old line')" in text and "print('the new line')" in text
    for line in ("<!-- a comment --> print('after the comment')", "s = '</script><img src=x onerror=alert(8)>'",
                 "emoji = '🎉 naïve ✓'"):
        assert line in text
