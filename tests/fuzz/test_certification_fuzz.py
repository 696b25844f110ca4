"""Certification's HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from iioe.reference import AI_PROGRAMME_ID
from services.certification.main import create_app
from services.certification.settings import CertificationSettings
from tests.fuzz.conftest import OPERATOR
from tests.fuzz.harness import ApiFuzzer, Caller, oversized_answers, post_paths
from tests.support.certification import AI_COURSES, complete, issued_on_stream, register
from tests.support.helpers import eventually, running_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(service_settings: dict[str, Any]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(CertificationSettings(**service_settings, ack_wait_seconds=5.0))
    async with running_app(app) as client:
        yield app, client


async def seeded_ids(client: httpx.AsyncClient, nc: NATS, ref: str) -> dict[str, list[str]]:
    """A certified educator of `must` and a registered one of `num`; their certificate and status lists."""
    educator, other = f"edu-{ref}", f"edu-{ref}-num"
    await register(nc, educator)
    await register(nc, other, institution="num")
    for course in AI_COURSES:
        await complete(nc, educator, course, 95)
    issued = await eventually(lambda: issued_on_stream(nc, educator), timeout=30, what="CertificateIssued")
    certificate_id = issued[0].json()["data"]["certificate_id"]
    credential = (await client.get(f"/v1/certificates/{certificate_id}")).json()["credential"]
    payload = json.loads(base64.urlsafe_b64decode(credential.split(".")[1] + "=="))
    lists = [e["statusListCredential"].rsplit("/", 1)[1] for e in payload["vc"]["credentialStatus"]]
    return {
        "certificate_id": [certificate_id],
        "educator_id": [educator, other],
        "list_id": lists,
        "programme_id": [AI_PROGRAMME_ID],
    }


async def test_certification_api_survives_fuzzing(
    service: tuple[FastAPI, httpx.AsyncClient], callers: list[Caller], nc: NATS, ref: str
) -> None:
    app, client = service
    fuzzer = ApiFuzzer(app, client, known=await seeded_ids(client, nc, ref))
    reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)


async def test_certification_refuses_bodies_over_64_kib(service: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = service
    paths = post_paths(app)
    assert "/v1/verify" in paths and len(paths) >= 6
    assert await oversized_answers(client, paths, OPERATOR) == {}
    assert await oversized_answers(client, ["/v1/verify"], {}) == {}  # public, no token: refused all the same


async def test_a_must_token_cannot_read_a_num_educator(
    service: tuple[FastAPI, httpx.AsyncClient], nc: NATS, must_token: str, ref: str
) -> None:
    _, client = service
    educator_id = f"edu-{ref}"
    await register(nc, educator_id, institution="num")

    async def known() -> bool:
        response = await client.get(f"/v1/educators/{educator_id}/progress", headers=OPERATOR)
        return response.status_code == 200

    await eventually(known, what="the num educator in certification")
    must = {"Authorization": f"Bearer {must_token}"}
    for url in (f"/v1/educators/{educator_id}/progress", f"/v1/educators/{educator_id}/certificates"):
        response = await client.get(url, headers=must)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), url
        assert (await client.get(url)).status_code == 401
    # an unknown educator looks the same to an institution token: it learns nothing about who exists
    unknown = await client.get(f"/v1/educators/nobody-{ref}/progress", headers=must)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (403, "forbidden")
    # operator actions are not an institution's
    revoke = await client.post(f"/v1/certificates/cert-{ref}/revoke", json={"reason": "x"}, headers=must)
    assert (revoke.status_code, revoke.json()["error"]["code"]) == (403, "forbidden")
