"""The live dashboard in headless Chromium: its numbers change when events arrive; the cascade panel,
the three languages."""

from __future__ import annotations

import os
import re
import shutil

import pytest
from playwright.async_api import async_playwright

from services.analytics.main import create_app
from services.analytics.tests.demo import cascade_events, demo_events
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


CHARTS_FIT = """() => [...document.querySelectorAll('.chart')].every((c) => {
  const s = c.querySelector('svg');
  return !s || Number(s.getAttribute('width')) === Math.max(260, Math.floor(c.clientWidth));
})"""


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


async def test_cascade_panel_russian_names_and_footer(infra, database_url, nc, ref, tmp_path) -> None:
    """With a realistic data set: the cascade panel draws the master teachers with most trainees
    (master teacher → trainees → second generation) and lists all in its table; RU switches labels and
    institution names; the Mongolian footer names the institute. Screenshots (desktop, phone) go to
    the directory IIOE_DASHBOARD_SCREENSHOTS names, e.g. docs/."""
    playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set CHROMIUM_PATH)")
    m = f"{ref}-m"
    async with serving(create_app(settings_for(infra, database_url, ref))) as base_url:
        await publish_all(nc, demo_events(ref) + cascade_events(ref, "must", "num"))
        async with playwright_api.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                await page.goto(f"{base_url}/?lang=mn")
                mine = page.locator(f'#cascade-table tr[data-educator="{m}"] td')

                async def listed() -> bool:
                    return await mine.count() == 6 and await mine.nth(6 - 1).text_content() == "1"

                await eventually(listed, timeout=60, what="the master teacher in the cascade table")
                assert [await mine.nth(i).text_content() for i in range(1, 6)] == ["1", "2", "1", "1", "1"]
                chart_rows = page.locator("#chart-cascade g.cascade-row")

                async def drawn() -> bool:
                    return await chart_rows.count() == 8

                await eventually(drawn, timeout=30, what="eight master teachers drawn")
                drawn_trainees = [int(await chart_rows.nth(i).get_attribute("data-trainees") or -1) for i in range(8)]
                assert drawn_trainees == sorted(drawn_trainees, reverse=True) and drawn_trainees[-1] >= 2
                assert sum([int(await chart_rows.nth(i).get_attribute("data-second") or 0) for i in range(8)]) > 0
                recognition = await (await page.request.get(f"{base_url}/v1/analytics/recognition")).json()
                requests = str(recognition["transfers"]["requests"])

                async def outcomes_shown() -> bool:
                    return await page.locator("#transfers-requests").text_content() == requests

                await eventually(outcomes_shown, timeout=30, what="the credit transfers in the outcomes panel")
                assert int(requests) > 1 and await page.locator("#transfers-table tbody tr").count() >= 1
                feedback = await (await page.request.get(f"{base_url}/v1/analytics/feedback")).json()
                rows = page.locator("#feedback-table tbody tr")
                assert await rows.count() == len(feedback["by_course"]) > 0
                assert (await page.locator("#practice-share").text_content() or "").endswith("%")
                footer = await page.locator(".site-footer").text_content() or ""
                assert "Олон улсын онлайн боловсролын хүрээлэн" in footer
                must_row = page.locator('#institutions-table tr[data-institution="must"] td.name')
                assert await must_row.text_content() == "Шинжлэх Ухаан Технологийн Их Сургууль"

                await page.click('.lang-btn[data-lang="ru"]')
                assert await page.locator("#cascade-title").text_content() == "Охват каскадного обучения"
                assert await page.locator("html").get_attribute("lang") == "ru"
                ru_name = "Монгольский государственный университет науки и технологий"
                assert await must_row.text_content() == ru_name
                assert "обучено:" in (await chart_rows.nth(0).text_content() or "")
                href = await page.locator("#report-csv").get_attribute("href") or ""
                assert re.search(r"/v1/analytics/report\?as_of=\d{4}-\d{2}-\d{2}&format=csv&lang=ru", href)
                report = await page.request.get(base_url + href)
                assert report.ok and (await report.text()).startswith("as_of,breakdown,key,name,")

                await page.click('.lang-btn[data-lang="en"]')
                await page.fill("#report-as-of", "2025-09-30")
                await page.evaluate("document.activeElement.blur()")
                shots = {"dashboard.png": (1280, 900), "dashboard-phone.png": (390, 844)}
                for name, (width, height) in shots.items():
                    await page.set_viewport_size({"width": width, "height": height})
                    await page.wait_for_function(CHARTS_FIT)  # the charts redraw shortly after a resize
                    await page.screenshot(path=str(tmp_path / name), full_page=True)
                    assert (tmp_path / name).stat().st_size > 10_000
                target = os.environ.get("IIOE_DASHBOARD_SCREENSHOTS")
                if target:
                    for name in shots:
                        shutil.copyfile(tmp_path / name, os.path.join(target, name))
            finally:
                await browser.close()
