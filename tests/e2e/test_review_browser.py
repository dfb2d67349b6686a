"""Open a generated HTML diff in headless Chromium (Debian's, driven by Playwright) from file://."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from nbops.cli.main import main
from tests.conftest import commit_all, write_notebook

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"),
    reason="needs Debian's chromium (`apt-get install chromium`; `make test` installs it as root)",
)


def test_html_diff_renders_changed_cells_offline(project, tmp_path):
    assert CHROMIUM, "chromium is not installed (CI must run the browser test)"
    from playwright.sync_api import sync_playwright

    path = write_notebook(project / "notebooks" / "exp.ipynb", [
        ("markdown", "# Experiment"),
        ("code", "C = 1.0", ["parameters"]),
        ("code", "print('the old line')"),
        ("code", "print('unchanged')"),
    ])
    commit_all(project, "base")
    nb = json.loads(path.read_text())
    nb["cells"][2]["source"] = "print('the brand new line')"
    nb["cells"].append({"cell_type": "markdown", "id": "added", "metadata": {},
                        "source": "An added cell about ünïcode"})
    path.write_text(json.dumps(nb))
    commit_all(project, "head")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    page_path = project / "D" / "notebooks__exp.ipynb.html"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri())
            page.wait_for_selector(".jp-Cellrow-source", timeout=30_000)
            text = page.inner_text("#nbdime-root")
            page.screenshot(path=str(tmp_path / "diff.png"))
        finally:
            browser.close()
    assert "print('the old line')" in text
    assert "print('the brand new line')" in text
    assert "An added cell about ünïcode" in text
    assert [u for u in requests if u.startswith(("http:", "https:"))] == []
    assert errors == []
