"""The verification page in headless Chromium on real servers: what a person scanning the QR code sees, in
their language, with nothing loaded from anywhere else. Set IIOE_SCREENSHOT_DIR=docs to refresh
docs/verify-page.png and docs/certificate-pdf.png."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from playwright.async_api import async_playwright

from iioe_tools.embedded import free_port
from services.certification.main import create_app
from tests.support.certification import AI_COURSES, OPERATOR_TOKEN, complete, issued_on_stream, register, settings_for
from tests.support.helpers import Infra, eventually

pytestmark = [pytest.mark.integration, pytest.mark.browser]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@asynccontextmanager
async def serving(app: FastAPI, port: int) -> AsyncIterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before starting")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


def chromium() -> str | None:
    return next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and os.path.exists(p)), None)


def outputs(tmp_path: Path) -> list[Path]:
    configured = os.environ.get("IIOE_SCREENSHOT_DIR")
    return [tmp_path, *([Path(configured)] if configured else [])]


async def test_the_verification_page_in_chromium_shows_status_qr_and_hidden_name_offline(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    executable = chromium()
    if executable is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    port = free_port()
    app = create_app(settings_for(infra.nats_url, database_url, f"{ref}-", public_url=f"http://127.0.0.1:{port}"))
    educator = f"edu-{ref}"
    async with serving(app, port) as base_url, async_playwright() as pw:
        await register(nc, educator, language="mn")
        for course in AI_COURSES:
            await complete(nc, educator, course, 93)
        issued = await eventually(lambda: issued_on_stream(nc, educator), timeout=30, what="CertificateIssued")
        cert_id = issued[0].json()["data"]["certificate_id"]
        url = f"{base_url}/verify/{cert_id}"

        browser = await pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            context = await browser.new_context(
                viewport={"width": 1000, "height": 900}, extra_http_headers={"Accept-Language": "mn-MN,mn;q=0.9"}
            )
            page = await context.new_page()
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))
            await page.goto(url)
            assert await page.locator("html").get_attribute("lang") == "mn"
            assert (await page.locator("#status .badge").inner_text()).strip() == "Хүчинтэй"
            assert "Нэр нуугдсан" in await page.locator("#holder").inner_text()
            assert await page.locator("#courses li").count() == 3
            qr = page.locator("#qr svg")
            box = await qr.bounding_box()
            assert await qr.is_visible() and box is not None and box["width"] >= 120
            assert await page.locator("#qr svg title").text_content() == url
            assert all(r.startswith(base_url) for r in requested), f"external requests: {requested}"

            await page.click("nav.langs a[hreflang=en]")
            await page.wait_for_url("**lang=en")
            assert "AI in Higher Education" in await page.locator("#programme").inner_text()
            assert "3 ECTS" in await page.locator("#credits").inner_text()
            for out in outputs(tmp_path):
                await page.screenshot(path=str(out / "verify-page.png"), full_page=True)

            async with page.expect_response(f"**/v1/certificates/{cert_id}/suspend") as answered:
                await page.evaluate(
                    """([url, token]) => fetch(url, {method: 'POST', headers: {Authorization: 'Bearer ' + token,
                    'Content-Type': 'application/json'}, body: JSON.stringify({reason: 'under inquiry'})})""",
                    [f"{base_url}/v1/certificates/{cert_id}/suspend", OPERATOR_TOKEN],
                )
            assert (await answered.value).status == 200
            await page.goto(f"{url}?lang=ru")
            assert (await page.locator("#status .badge").inner_text()).strip() == "Приостановлен"
            assert await page.locator("#status-reason").inner_text() == "under inquiry"
        finally:
            await browser.close()

        if shutil.which("pdftoppm"):
            async with httpx.AsyncClient() as client:
                pdf = (await client.get(f"{base_url}/v1/certificates/{cert_id}.pdf")).content
            (tmp_path / "certificate.pdf").write_bytes(pdf)
            for out in outputs(tmp_path):
                await asyncio.to_thread(
                    subprocess.run,
                    [
                        "pdftoppm",
                        "-png",
                        "-r",
                        "70",
                        "-singlefile",
                        str(tmp_path / "certificate.pdf"),
                        str(out / "certificate-pdf"),
                    ],
                    check=True,
                )
            assert (tmp_path / "certificate-pdf.png").stat().st_size > 10_000
