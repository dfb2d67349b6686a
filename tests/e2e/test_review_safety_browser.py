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


# --- issue 22: the audit's payloads, in markdown and in outputs, in the run report and the review
# page. Each would run script (set the title or window.__pwned, ask the listener) or fetch from the
# listener; none may. An unclosed <style> (whose CSS would hide everything) comes before the last
# cell, whose marker must still be visible.

LAST = "LAST_CELL_MARKER all cells shown"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


class _Listener:
    """A local HTTP server that records every request it gets (none may come)."""

    def __init__(self) -> None:
        import http.server
        import threading

        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = _Listener()
    yield server
    server.close()


def _pwn(url: str, tag: str) -> str:
    """JavaScript that marks the page as run and tells the listener."""
    return f"window.__pwned='{tag}';document.title='pwned';fetch('{url}/{tag}')"


def _markdown_payloads(url: str) -> list[str]:
    return [
        f"<script>{_pwn(url, 'md-script')}</script>",
        f'<img src=x onerror="{_pwn(url, "md-img")}">',
        f'<svg onload="{_pwn(url, "md-svg")}"><circle r="5"/></svg>',
        f'<details open ontoggle="{_pwn(url, "md-details")}"><summary>details</summary>inside</details>',
        f'<iframe src="data:text/html,<script>parent.{_pwn(url, "md-iframe")}</script>"></iframe>',
        f"[md link](javascript:{_pwn(url, 'md-js-md')}) <a href=\"javascript:{_pwn(url, 'md-js')}\">js link</a>",
        f"![remote]({url}/md-remote.png) <img src='{url}/md-remote2.png'> kept: <b>bold</b> "
        f'<img alt="pixel" src="data:image/png;base64,{PNG}">',
        "<style>main, body, .jp-Cell, .jp-Notebook, #nbdime-root, .jp-Cellrow-source { display: none !important }",
    ]


def _outputs(url: str) -> list[dict]:
    def shown(data: dict) -> dict:
        return {"output_type": "display_data", "data": data, "metadata": {}}

    return [
        shown({"text/html": f"<script>{_pwn(url, 'out-script')}</script>", "text/plain": "o1"}),
        shown({"text/html": f'<img src=x onerror="{_pwn(url, "out-img")}">', "text/plain": "o2"}),
        shown({"text/html": f'<svg onload="{_pwn(url, "out-svg")}"></svg><a href="javascript:'
                            f'{_pwn(url, "out-js")}">out js link</a>', "text/plain": "o3"}),
        shown({"text/html": f"<img src='{url}/out-remote.png'><style>main, body {{ display: none !important }}",
               "text/plain": "o4"}),
        shown({"application/javascript": _pwn(url, "out-javascript"), "text/plain": "o5"}),
        shown({"text/markdown": f'<img src=x onerror="{_pwn(url, "out-markdown")}">', "text/plain": "o6"}),
        shown({"image/svg+xml": f'<svg xmlns="http://www.w3.org/2000/svg" onload="{_pwn(url, "out-svgimg")}">'
                                f"<script>{_pwn(url, 'out-svgscript')}</script></svg>", "text/plain": "o7"}),
    ]


def _hostile_notebook(url: str, last: str = LAST, outputs: bool = True):
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    cells = [new_markdown_cell(m) for m in _markdown_payloads(url)]
    code = new_code_cell("x = 1", execution_count=1)
    if outputs:
        code.outputs = [new_output(o["output_type"], data=o["data"]) for o in _outputs(url)]
    cells += [code, new_markdown_cell(last)]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "state": {}}}
    return nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))


class _Watch:
    """What a page asked for: every request, and those a server answered."""

    def __init__(self, page) -> None:
        self.requested: list[str] = []
        self.answered: list[str] = []
        page.on("request", lambda r: self.requested.append(r.url))
        page.on("response", lambda r: self.answered.append(r.url))

    @staticmethod
    def outside(urls: list[str]) -> list[str]:
        return [u for u in urls if not u.startswith(("file:", "data:", "about:"))]


def _click_links(page, names: list[str]) -> None:
    for name in names:
        link = page.get_by_text(name, exact=True)
        if link.count():
            link.first.click(timeout=5_000, force=True)
    page.wait_for_timeout(300)


def _nothing_ran(page, dialogs: list[str], errors: list[str], listener: _Listener, title: str) -> None:
    page.wait_for_timeout(700)  # any handler, load or timer would have fired by now
    assert page.evaluate("window.__pwned") is None
    assert page.title() == title
    assert dialogs == [] and errors == []
    assert listener.hits == []


def _title(path) -> str:
    import re

    return re.search(r"<title>(.*?)</title>", path.read_text(encoding="utf-8")).group(1)


@pytest.mark.timeout(120)
def test_run_report_runs_no_notebook_script_loads_nothing_and_shows_every_cell(tmp_path, listener):
    import nbformat

    from nbops.run.render import render_html

    source = tmp_path / "hostile.ipynb"
    nbformat.write(_hostile_notebook(listener.url), str(source))
    page_path = render_html(source, tmp_path)

    with chromium() as browser:
        page, dialogs, errors = watched_page(browser)
        watch = _Watch(page)
        page.goto(page_path.as_uri())
        page.wait_for_selector(f"text={LAST}", timeout=10_000)
        _click_links(page, ["js link", "md link", "out js link"])
        _nothing_ran(page, dialogs, errors, listener, _title(page_path))
        assert page.get_by_text(LAST).is_visible()  # the unclosed <style> hid nothing
        assert page.get_by_text("inside").is_visible() and page.locator("b", has_text="bold").is_visible()
        assert page.evaluate("document.scripts.length") == 0
        pixel = page.locator('img[alt="pixel"]')  # a data: image in markdown still shows
        assert pixel.count() == 1 and page.evaluate("document.querySelector('img[alt=pixel]').naturalWidth") == 1
        shown = page.inner_text("main")
        assert "out-javascript" in shown  # the JavaScript output as text, not run
        assert page.url == page_path.as_uri()  # no link navigated away
    assert watch.outside(watch.requested) == [] and watch.outside(watch.answered) == []
    assert listener.hits == []


def _review_page(browser, path, listener: _Listener, title: str):
    page, dialogs, errors = watched_page(browser)
    watch = _Watch(page)
    page.goto(path.as_uri())
    page.wait_for_selector(".jp-Cellrow-source", state="attached", timeout=30_000)
    page.uncheck("#nbdime-hide-unchanged")  # show every cell, hostile ones included
    page.wait_for_function(f"() => document.getElementById('nbdime-root').innerText.includes('{LAST}')",
                           timeout=10_000)
    _click_links(page, ["js link", "md link", "out js link"])
    _nothing_ran(page, dialogs, errors, listener, title)
    assert page.get_by_text(LAST).first.is_visible()  # no cell's <style> hid the rest
    assert page.get_by_text("Trust outputs").is_hidden()  # trusting would run the outputs' scripts
    assert page.url.split("?")[0] == path.as_uri()  # the app adds ?base=&remote=; no link went anywhere
    return watch


@pytest.mark.timeout(120)
def test_review_page_with_hostile_markdown_and_outputs_runs_nothing_and_loads_nothing(tmp_path, listener):
    import copy

    from nbops.review.htmlpage import render_diff_page

    head = _hostile_notebook(listener.url)
    base = copy.deepcopy(head)
    base.cells[-1].source = "the old last cell"
    base.cells[-2].outputs = []  # the outputs show as added: nbdime renders them
    page_path = tmp_path / "review.html"
    page_path.write_text(render_diff_page(base, head, "base", "head", "hostile review"), encoding="utf-8")

    with chromium() as browser:
        watch = _review_page(browser, page_path, listener, "hostile review")
    # nbdime asks for the notebooks' images (the policy blocks each before it leaves the page)
    assert watch.outside(watch.answered) == []
    assert listener.hits == []


@pytest.mark.timeout(180)
def test_nbops_review_of_hostile_markdown_runs_nothing_and_loads_nothing(project, listener):
    import nbformat

    from nbops.cli.main import main
    from tests.conftest import commit_all

    path = project / "notebooks" / "hostile.ipynb"
    path.parent.mkdir()
    nbformat.write(_hostile_notebook(listener.url, last="the old last cell"), str(path))
    commit_all(project, "base")
    nbformat.write(_hostile_notebook(listener.url), str(path))
    commit_all(project, "head")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0

    with chromium() as browser:
        watch = _review_page(browser, project / "D" / "notebooks__hostile.ipynb.html", listener,
                             "nbops review: notebooks/hostile.ipynb")
        index, dialogs, errors = watched_page(browser)
        index.goto((project / "D" / "index.html").as_uri())
        assert index.evaluate("document.scripts.length") == 0 and dialogs == [] and errors == []
    assert watch.outside(watch.answered) == []
    assert listener.hits == []
