"""The public pages on the in-memory unit of work: verification page (mn/en/ru), criteria, issuer profile and
the printable PDF. Rendering only; the browser test (tests/integration) drives the page on real servers."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from iioe.runtime.http import install_error_handlers
from services.certification.http import build_router
from services.certification.i18n import choose_language
from services.certification.pages import build_pages_router
from services.certification.settings import CertificationSettings
from services.certification.tests.test_certificate_status import AI, URL, World
from services.certification.usecases import RevokeCertificate, SuspendCertificate


@pytest.fixture
async def site() -> AsyncIterator[tuple[World, httpx.AsyncClient]]:
    world = World()
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_pages_router(world.service))
    app.include_router(build_router(world.service, CertificationSettings()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield world, client


@pytest.mark.parametrize(
    ("query", "header", "expected"),
    [
        ("ru", "mn", "ru"),
        (None, "mn-MN,mn;q=0.9,en;q=0.8", "mn"),
        (None, "de-DE, ru;q=0.5, en;q=0.7", "en"),
        (None, "ru-RU", "ru"),
        (None, "fr, de", "en"),
        ("xx", None, "en"),
        (None, "en;q=0, mn;q=0.1", "mn"),
    ],
)
def test_the_page_language_comes_from_the_query_then_accept_language_then_english(
    query: str | None, header: str | None, expected: str
) -> None:
    assert choose_language(query, header) == expected


async def test_the_verification_page_states_programme_issuer_date_status_and_hides_the_name(
    site: tuple[World, httpx.AsyncClient],
) -> None:
    world, http = site
    issued = await world.certify("edu-1")
    page = await http.get(f"/verify/{issued.certificate_id}", headers={"Accept-Language": "mn"})
    assert page.status_code == 200 and page.headers["content-language"] == "mn"
    html = page.text
    assert "Гэрчилгээ баталгаажуулалт" in html and "Хүчинтэй" in html and "Нэр нуугдсан" in html
    assert 'data-status="active"' in html and issued.certificate_id in html
    assert "<svg" in html and f"{URL}/verify/{issued.certificate_id}" in html
    assert "/.well-known/jwks.json" in html and "iioe verify" in html and "/status/revocation-1" in html
    assert "http://" not in html.replace(URL, "").replace("http://www.w3.org/2000/svg", ""), "no external assets"
    assert "edu-1" not in html, "the page shows no holder id either"

    english = (await http.get(f"/verify/{issued.certificate_id}?lang=en")).text
    assert "AI in Higher Education" in english and "Name hidden" in english and "3 ECTS" in english
    assert issued.issued_at.date().isoformat() in english

    await world.service.suspend(SuspendCertificate(issued.certificate_id, "under inquiry"))
    russian = (await http.get(f"/verify/{issued.certificate_id}", headers={"Accept-Language": "ru"})).text
    assert "Приостановлен" in russian and "under inquiry" in russian and 'data-status="suspended"' in russian
    await world.service.revoke(RevokeCertificate(issued.certificate_id, "fraud"))
    revoked = (await http.get(f"/verify/{issued.certificate_id}?lang=en")).text
    assert "Revoked" in revoked and "fraud" in revoked

    missing = await http.get("/verify/cert-nope?lang=ru")
    assert missing.status_code == 404 and "Сертификат не найден" in missing.text


async def test_the_criteria_page_and_the_issuer_profile_are_public(site: tuple[World, httpx.AsyncClient]) -> None:
    _, http = site
    page = await http.get(f"/programmes/{AI}/criteria?lang=mn")
    assert page.status_code == 200 and "80" in page.text and "Хичээл бүрт" in page.text
    assert (await http.get("/programmes/nope/criteria")).status_code == 404
    profile = await http.get("/issuer")
    assert profile.headers["content-type"].startswith("application/ld+json")
    body = profile.json()
    assert body["type"] == ["Profile"] and body["id"] == "urn:iioe:issuer:unesco-ichei"
    assert body["jwks_uri"] == f"{URL}/.well-known/jwks.json"
    assert f"{URL}/programmes/{AI}/criteria" in [a["criteria"] for a in body["achievements"]]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils (pdftotext) not installed")
async def test_the_printable_certificate_is_one_page_in_mongolian_and_english(
    site: tuple[World, httpx.AsyncClient], tmp_path: Path
) -> None:
    world, http = site
    issued = await world.certify("edu-1")
    response = await http.get(f"/v1/certificates/{issued.certificate_id}.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(response.content)
    info = await asyncio.to_thread(_run, "pdfinfo", str(pdf))
    assert re.search(r"^Pages:\s+1$", info, re.MULTILINE), info
    text = await asyncio.to_thread(_run, "pdftotext", "-layout", str(pdf), "-")
    squashed = " ".join(text.split())
    assert "AI in Higher Education" in squashed and "ГЭРЧИЛГЭЭ" in squashed
    assert issued.certificate_id in squashed and "Нэр нуугдсан" in squashed
    assert f"{URL}/verify/{issued.certificate_id}" in squashed
    assert (await http.get("/v1/certificates/cert-nope.pdf")).status_code == 404
    # the JSON route still answers for the same id without the suffix
    assert (await http.get(f"/v1/certificates/{issued.certificate_id}")).json()["status"] == "active"


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout
