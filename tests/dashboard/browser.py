"""A real browser for the dashboard tests: Debian's Chromium (`make test` installs the
`chromium` package when it is missing) driven by Playwright, never a browser Playwright
downloads. Screenshots go to $MYAPP_SCREENSHOTS when it is set (docs/images for the docs)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_VARIABLE = "MYAPP_SCREENSHOTS"
VIEWPORT = {"width": 1280, "height": 860}


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(`make test` installs it: apt-get install chromium)",
            pytrace=False,
        )


@asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A page in a fresh Chromium profile, closed afterwards."""
    require_chromium()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,  # type: ignore[arg-type]
        )
        try:
            page = context.pages[0] if context.pages else await context.new_page()
            yield page
        finally:
            await context.close()


async def screenshot(page: Page, name: str) -> None:
    """Save the page as $MYAPP_SCREENSHOTS/<name>.png when that variable is set."""
    directory = os.environ.get(SCREENSHOTS_VARIABLE)
    if directory:
        os.makedirs(directory, exist_ok=True)
        await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)
