"""Headless Chromium for browser tests: Debian's /usr/bin/chromium driven by Playwright — never a downloaded
browser (`playwright install` is not needed). Tests using the `chromium` fixture are skipped, with the reason,
when the browser or the playwright package is missing.

Use: `pytest_plugins = ["tests.browser"]` in the test module, then the `chromium` and `screenshot` fixtures;
mark the module `pytest.mark.browser`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# The README's pictures are refreshed only when asked (`make screenshots`): a test run leaves the checkout clean.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SCREENSHOTS = DOCS_SCREENSHOTS if os.environ.get("SALESPULSE_SCREENSHOTS") == "docs" else \
    Path(tempfile.gettempdir()) / "salespulse-screenshots"
HAVE_CHROMIUM = CHROMIUM.exists()


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium (playwright's Browser), closed after the test."""
    if not HAVE_CHROMIUM:
        pytest.skip("no /usr/bin/chromium: apt-get update && apt-get install -y chromium")
    async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed (test extra)")
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def save_screenshot(page: Any, name: str, **kwargs: Any) -> Path:
    """Save a screenshot (under docs/screenshots/ with SALESPULSE_SCREENSHOTS=docs); returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    await page.screenshot(path=str(path), **kwargs)
    return path


@pytest.fixture
def screenshot() -> Callable[..., Awaitable[Path]]:
    """`await screenshot(page, "name.png")`: save_screenshot, for modules that load this file as a plugin."""
    return save_screenshot
