"""Debian's chromium driven by Playwright (no browser download), for the tests that open a page:
review pages, the lab. Under CI the browser is required (`make test` installs it as root)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM and not os.environ.get("CI"),
    reason="needs Debian's chromium (`apt-get install chromium`; `make test` installs it as root)",
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium, closed on the way out."""
    assert CHROMIUM, "chromium is not installed (CI must run the browser tests)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def watched_page(browser: Any, width: int = 1400, height: int = 1000) -> tuple[Any, list[str], list[str]]:
    """A page, and the lists its dialogs (alert() messages, dismissed) and script errors go to."""
    page = browser.new_page(viewport={"width": width, "height": height})
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, dialogs, errors
