"""The live dashboard in headless Chromium: its numbers change when events arrive; the cascade panel,
the three languages."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from iioe.testing import eventually
from services.analytics.main import create_app
from services.analytics.tests.helpers import publish_all, registered, serving, settings_for
from services.analytics.tests.test_cascade_http import cascade_events

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
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    code = f"x{ref}"
    async with serving(create_app(settings_for(infra, database_url, ref))) as base_url:
        async with playwright_api.async_playwright() as pw:
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


async def test_cascade_panel_russian_names_and_footer(infra, database_url, nc, ref, tmp_path) -> None:
    """The cascade panel shows master teacher → trainees → second generation; RU switches labels and
    institution names; the Mongolian footer names the institute. Writes a screenshot (to docs/ when
    IIOE_DASHBOARD_SCREENSHOT names a file)."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    m = f"{ref}-m"
    async with serving(create_app(settings_for(infra, database_url, ref))) as base_url:
        await publish_all(nc, cascade_events(ref, "must", "num"))
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{base_url}/?lang=mn")
                row = page.locator(f'#chart-cascade g.cascade-row[data-educator="{m}"]')

                async def drawn() -> bool:
                    return await row.count() == 1 and await row.get_attribute("data-second") == "1"

                await eventually(drawn, timeout=30, what="the master teacher in the cascade panel")
                assert await row.get_attribute("data-trainees") == "2"
                cells = page.locator(f'#cascade-table tr[data-educator="{m}"] td')
                assert await cells.count() == 6
                footer = await page.locator(".site-footer").text_content() or ""
                assert "Олон улсын онлайн боловсролын хүрээлэн" in footer
                must_row = page.locator('#institutions-table tr[data-institution="must"] td.name')
                assert await must_row.text_content() == "Шинжлэх Ухаан Технологийн Их Сургууль"

                await page.click('.lang-btn[data-lang="ru"]')
                assert await page.locator("#cascade-title").text_content() == "Охват каскадного обучения"
                assert await page.locator("html").get_attribute("lang") == "ru"
                ru_name = "Монгольский государственный университет науки и технологий"
                assert await must_row.text_content() == ru_name
                assert "обучено: 2" in (await row.text_content() or "")
                href = await page.locator("#report-csv").get_attribute("href") or ""
                assert re.search(r"/v1/analytics/report\?as_of=\d{4}-\d{2}-\d{2}&format=csv", href)

                await page.click('.lang-btn[data-lang="en"]')
                shot = tmp_path / "dashboard.png"
                await page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                target = os.environ.get("IIOE_DASHBOARD_SCREENSHOT")
                if target:
                    shutil.copyfile(shot, target)
            finally:
                await browser.close()
