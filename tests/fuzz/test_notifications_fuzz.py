"""Notifications' HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL.

Webhook URLs are generated at random: host names resolve through a stub (never DNS), to an address the
SSRF guard refuses, so no generated webhook is ever registered for a real host."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.notifications import targets
from services.notifications.main import create_app
from services.notifications.settings import NotificationsSettings
from tests.fuzz.conftest import OPERATOR
from tests.fuzz.harness import ApiFuzzer, Caller, oversized_answers, post_paths
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration


PARTNER = "hooks.partner.test"
"""The one webhook host allowed here (it resolves, through the stub, to TEST-NET-1 and receives nothing:
these tests publish no events)."""


async def documentation_address(host: str, port: int) -> list[str]:
    return ["192.0.2.1"]  # TEST-NET-1: refused as a private/reserved target


@pytest.fixture
async def service(
    service_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    monkeypatch.setattr(targets, "system_resolver", documentation_address)
    app = create_app(NotificationsSettings(**service_settings, webhook_allow=PARTNER))
    async with running_app(app) as client:
        yield app, client


async def test_notifications_api_survives_fuzzing(
    service: tuple[FastAPI, httpx.AsyncClient], callers: list[Caller]
) -> None:
    app, client = service
    hook = {"url": f"https://{PARTNER}/iioe", "institution": "must", "event_types": ["certificate_issued"]}
    created = await client.post("/v1/webhooks", json=hook, headers=OPERATOR)
    assert created.status_code == 201, created.text
    fuzzer = ApiFuzzer(app, client, known={"webhook_id": [created.json()["id"]]})
    reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)


async def test_notifications_refuses_bodies_over_64_kib(service: tuple[FastAPI, httpx.AsyncClient]) -> None:
    app, client = service
    paths = post_paths(app)
    assert "/v1/webhooks" in paths
    assert await oversized_answers(client, paths, OPERATOR) == {}


async def test_a_must_token_cannot_list_num_notifications(
    service: tuple[FastAPI, httpx.AsyncClient], must_token: str
) -> None:
    _, client = service
    must = {"Authorization": f"Bearer {must_token}"}
    other = await client.get("/v1/notifications", params={"institution": "num"}, headers=must)
    assert (other.status_code, other.json()["error"]["code"]) == (403, "forbidden")
    assert (await client.get("/v1/notifications", params={"institution": "num"})).status_code == 401
    assert (await client.get("/v1/notifications", headers=must)).status_code == 200  # its own institution
    for method, url in [("GET", "/v1/webhooks"), ("GET", "/v1/webhooks/deliveries"), ("DELETE", "/v1/webhooks/wh_1")]:
        response = await client.request(method, url, headers=must)  # operator scope `webhooks`
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), (method, url)
    assert (await client.get("/v1/notifications", params={"institution": "num"}, headers=OPERATOR)).status_code == 200
