"""The live dashboard in headless Chromium: its numbers change when events arrive."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.async_api import async_playwright

from services.analytics.main import create_app
from services.analytics.tests.helpers import publish_all, registered, serving, settings_for
from tests.support.helpers import eventually

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def as_int(text: str | None) -> int:
    digits = re.sub(r"\D", "", text or "")
    return int(digits) if digits else -1


async def test_dashboard_numbers_change_when_events_arrive(infra, database_url, nc, ref) -> None:
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    code = f"x{ref}"
    async with serving(create_app(settings_for(infra, database_url, ref))) as base_url:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{base_url}/?lang=en")
                kpi = page.locator("#kpi-educators_registered")

                async def shown() -> int:
                    return max(0, as_int(await kpi.text_content()) + 1)  # 0 while the page shows "—"

                before = await eventually(shown, timeout=30, what="the first summary on the page") - 1
                await publish_all(nc, [registered(f"{ref}-b{i}", code) for i in range(7)])

                async def updated() -> bool:
                    return as_int(await kpi.text_content()) == before + 7

                await eventually(updated, timeout=30, what="the page to show 7 more educators")
                assert await page.locator("#connection-status").get_attribute("data-state") == "live"
            finally:
                await browser.close()
