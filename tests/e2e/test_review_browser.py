"""Open generated review pages in headless Chromium (Debian's, driven by Playwright) from file://:
the index, and pages that share one copy of nbdime's web app. NBOPS_SCREENSHOTS=1 copies the
page's screenshot to docs/review-diff.png (the README shows it)."""

from __future__ import annotations

import json
import os
import shutil

from nbops.cli.main import main
from tests.browser import ARGS, CHROMIUM, needs_chromium
from tests.conftest import REPO, commit_all, write_notebook

pytestmark = needs_chromium


def test_index_and_pages_share_one_app_and_render_offline(project, tmp_path):
    assert CHROMIUM, "chromium is not installed (CI must run the browser test)"
    from playwright.sync_api import sync_playwright

    path = write_notebook(project / "notebooks" / "exp.ipynb", [
        ("markdown", "# Experiment"),
        ("code", "C = 1.0", ["parameters"]),
        ("code", "print('the old line')"),
        *[("code", f"print('unchanged {i}')") for i in range(6)],
    ], nbops={"model": {"name": "exp", "gates": ["accuracy >= 0.8"]}})
    other = write_notebook(project / "notebooks" / "other.ipynb", [("code", "print('other old')")])
    commit_all(project, "base")
    nb = json.loads(path.read_text())
    nb["cells"][2]["source"] = "print('the brand new line')"
    nb["cells"][3]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "left in\n"}]
    nb["cells"].append({"cell_type": "markdown", "id": "added", "metadata": {},
                        "source": "An added cell about ünïcode"})
    nb["metadata"]["nbops"]["model"]["gates"] = ["accuracy >= 0.1"]  # a gate lowered: no cell shows it
    path.write_text(json.dumps(nb))
    other.write_text(other.read_text().replace("other old", "other new"))
    commit_all(project, "head")
    assert main(["review", "--base", "HEAD~1", "--out", "D"]) == 0
    out = project / "D"
    assert len(list(out.glob("nbdime-webapp-*.js"))) == 1  # one copy for both pages

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "index.html").as_uri())
            links = page.eval_on_selector_all("#nbops-index a", "els => els.map(e => e.textContent)")
            page.click("text=notebooks/exp.ipynb")
            page.wait_for_selector(".jp-Cellrow-source", state="attached", timeout=30_000)
            page.wait_for_function("() => document.getElementById('nbdime-root').innerText.includes('ünïcode')",
                                   timeout=10_000)  # markdown renders a moment later
            text = page.inner_text("#nbdime-root")
            banner = page.inner_text("#nbops-outputs")
            judged = page.inner_text("#nbops-judged")
            hidden = page.evaluate("""() => [...document.querySelectorAll('.jp-Cell-diff.jp-Diff-unchanged')]
                                      .filter(e => e.offsetParent === null).length""")
            checked = page.is_checked("#nbdime-hide-unchanged")
            page.screenshot(path=str(tmp_path / "diff.png"))
            page.goto((out / "notebooks__other.ipynb.html").as_uri())
            page.wait_for_selector(".jp-Cellrow-source", state="attached", timeout=30_000)
            other_text = page.inner_text("#nbdime-root")
        finally:
            browser.close()
    assert links == ["notebooks/exp.ipynb", "notebooks/other.ipynb"]
    assert "print('the old line')" in text and "print('the brand new line')" in text
    assert "An added cell about ünïcode" in text
    assert checked and hidden >= 6  # unchanged cells hidden by default, as nbdime's own page does
    assert "print('unchanged 3')" not in text  # inner_text has only what is displayed
    assert "cell 4: stdout" in banner  # an output committed by mistake is said on the page
    assert "What changed in how this notebook is judged" in judged  # above the diff, displayed
    assert "⚠ loosened gate: accuracy >= 0.8 -> accuracy >= 0.1" in judged, judged
    # and nbdime's diff of the metadata, both values (a nested patch failed nbdime's app: no diff)
    assert '"accuracy >= 0.8"' in text and '"accuracy >= 0.1"' in text
    assert "other old" in other_text and "other new" in other_text
    assert [u for u in requests if u.startswith(("http:", "https:"))] == []
    assert errors == []
    if os.environ.get("NBOPS_SCREENSHOTS"):
        shutil.copyfile(tmp_path / "diff.png", REPO / "docs" / "review-diff.png")

