"""The certificate listing and exports on real PostgreSQL answer exactly what the in-memory reader answers:
the SQL status filter, issue-day bounds, keyset batches and progress records hold the same data."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.db import setup_database
from services.certification import listing
from services.certification.key_vault import KeyVault
from services.certification.listing import CertificateQuery
from services.certification.main import MIGRATIONS, create_app
from services.certification.settings import SOURCE
from services.certification.store import PostgresUnitOfWork
from services.certification.store_listing import PostgresListingReader
from services.certification.tests.test_listing import AI, LIGHTBOARD, World, populate
from tests.integration.test_certification_status import ADMIN, certified, grant
from tests.support.certification import settings_for
from tests.support.helpers import Infra, running_app

pytestmark = pytest.mark.integration

QUERIES = [
    CertificateQuery(),
    CertificateQuery("must"),
    CertificateQuery("num"),
    CertificateQuery("must", status="active"),
    CertificateQuery("must", status="suspended"),
    CertificateQuery(None, status="revoked"),
    CertificateQuery("must", programme_id=LIGHTBOARD),
    CertificateQuery("must", programme_id=AI, issued_from=date(2025, 4, 3), issued_to=date(2025, 4, 4)),
    CertificateQuery(None, issued_from=date(2025, 4, 7)),
    CertificateQuery(None, issued_to=date(2025, 4, 1)),
    CertificateQuery("elsewhere"),
]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, "certification", MIGRATIONS, max_size=2)
    yield pool
    await pool.close()


async def listed(world: World) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for query in QUERIES:
        pages = [await world.listing.page(query, n, 3) for n in (1, 2, 3, 4)]
        out[repr(query)] = {
            "totals": [total for total, _ in pages],
            "pages": [[c.certificate_id for c in found] for _, found in pages],
            "export": [row async for row in world.listing.certificate_rows(query)],
        }
    for institution in ("must", "num", None):
        out[f"progress {institution}"] = [row async for row in world.listing.progress_rows(institution)]
    return out


async def test_postgres_listing_matches_the_in_memory_reader(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "EXPORT_BATCH", 2)  # several keyset batches on both
    fake = await populate(World())
    uow = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=KeyVault(os.urandom(32)))  # keys sealed at rest
    real = await populate(World(uow, PostgresListingReader(lambda: pool)))

    expected, actual = await listed(fake), await listed(real)
    assert actual == expected
    assert expected[repr(QUERIES[1])]["totals"][0] == 7 and len(expected["progress None"]) == 10 * 6


async def test_the_service_lists_and_exports_certificates_issued_from_the_stream(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    """The real app: certificates issued from events are listed and exported, `/v1/certificates/export` is not
    taken for a certificate id, and the catalogue with its provenance is public."""
    must = await grant(nc, kind="institution", actor="partner-must", institution="must")
    async with running_app(create_app(settings_for(infra.nats_url, database_url, f"{ref}-"))) as http:
        cert_id = (await certified(nc, f"edu-{ref}"))["certificate_id"]
        listed = await http.get("/v1/certificates", params={"programme_id": AI}, headers=must)
        assert listed.status_code == 200 and [c["certificate_id"] for c in listed.json()["items"]] == [cert_id]
        assert (await http.get("/v1/certificates", params={"institution": "num"}, headers=must)).status_code == 403
        exported = await http.get("/v1/certificates/export", headers=ADMIN)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert cert_id in exported.text
        progress = await http.get("/v1/educators/progress/export", params={"format": "xlsx"}, headers=must)
        assert progress.status_code == 200 and progress.content.startswith(b"PK")  # a ZIP: the workbook
        assert (await http.get(f"/v1/certificates/{cert_id}")).status_code == 200  # still public
        programmes = (await http.get("/v1/programmes")).json()["programmes"]
        assert {p["programme_id"]: p["provisional"] for p in programmes}[AI] is False
        assert "/v1/certificates/export" in (await http.get("/openapi.json")).json()["paths"]
