"""The pages in a real browser: Debian's Chromium driven by Playwright (from PyPI; no browser is ever downloaded),
axe-core from npm for the accessibility check, and screenshots kept as test artifacts.

Without /usr/bin/chromium, node or npm the browser tests skip and say why; with CI=true they fail instead
(.ci/run installs Chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "pages"
# axe-core's own folder in the npm cache (a prefix of its own, so no other npm install there is disturbed).
NPM_CACHE = Path(os.environ.get("KRONIKER_TEST_NPM", Path.home() / ".cache" / "kroniker-test-npm")) / "axe-core-4"
SERIOUS = ("serious", "critical")


def _missing(why: str) -> None:
    if IN_CI:
        pytest.fail(why + " (CI=true: it must be there)")
    pytest.skip(why)


def axe_script() -> str:
    """axe.min.js from axe-core 4, installed from npm into the cache on first use."""
    script = NPM_CACHE / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            _missing("node and npm are needed to install axe-core for the accessibility check")
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([str(npm), "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
                               str(NPM_CACHE), "axe-core@4"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not script.exists():
            _missing(f"npm could not install axe-core: {done.stderr[-500:]}")
    return script.read_text(encoding="utf-8")


@pytest.fixture(scope="session", name="chromium")
def chromium_fixture() -> Iterator[Any]:
    """Headless Chromium (Debian's) through Playwright."""
    if not CHROMIUM.exists():
        _missing(f"{CHROMIUM} is not here (apt-get install chromium); Playwright's own browsers are never downloaded")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (the test extra) is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session", name="axe")
def axe_fixture() -> str:
    return axe_script()


def new_page(browser: Any) -> Any:
    """A fresh browser (no cookies), Danish, with JavaScript off for the pages themselves: they must work without
    it. (axe is run in a context of its own, see check_accessibility.)"""
    context = browser.new_context(locale="da-DK", java_script_enabled=False, viewport={"width": 1280, "height": 900})
    return context.new_page()


def check_accessibility(page: Any, axe_js: str, name: str) -> list[dict[str, Any]]:
    """axe-core's check of the page as it is now: the page's HTML is opened again in a context where script may
    run (the pages' CSP allows none, so that context bypasses it) and axe.run() is asked. Every violation is
    printed; those of impact serious or critical are returned."""
    html, url = page.content(), page.url
    context = page.context.browser.new_context(locale="da-DK", bypass_csp=True, java_script_enabled=True,
                                               viewport={"width": 1280, "height": 900})
    try:
        checker = context.new_page()
        # The same origin as the page, so relative links and forms read as they do there; nothing is fetched.
        checker.route("**/*", lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8",
                                                            body=html))
        checker.goto(url)
        checker.add_script_tag(content=axe_js)
        violations = checker.evaluate("async () => (await axe.run(document)).violations.map(v => ({id: v.id, "
                                      "impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' '))"
                                      "}))")
    finally:
        context.close()
    for v in violations:
        print(f"axe [{name}] {v['impact']}: {v['id']} – {v['help']} at {v['nodes'][:5]}")
    return [v for v in violations if v["impact"] in SERIOUS]


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path
