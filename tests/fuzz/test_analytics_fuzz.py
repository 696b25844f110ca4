"""Analytics' HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL.

Every analytics route is public (aggregates, no personal data); the server-sent event stream never ends,
so it is left out of the generated requests (httpx's ASGI transport waits for the whole body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.analytics.main import create_app
from services.analytics.settings import AnalyticsSettings
from tests.fuzz.harness import ApiFuzzer, Caller, oversized_answers, post_paths
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration

ENDLESS = {"GET /v1/analytics/stream"}


@pytest.fixture
async def service(service_settings: dict[str, Any]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(AnalyticsSettings(**service_settings))
    async with running_app(app) as client:
        yield app, client


async def test_analytics_api_survives_fuzzing(
    service: tuple[FastAPI, httpx.AsyncClient], callers: list[Caller]
) -> None:
    app, client = service
    fuzzer = ApiFuzzer(app, client, skip=ENDLESS, known={"code": ["must", "num"]})
    reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)


async def test_analytics_is_aggregates_only_and_public_to_every_institution(
    service: tuple[FastAPI, httpx.AsyncClient], must_token: str
) -> None:
    """No analytics route holds personal data (contract section 8: aggregate analytics are public), so none
    needs a token and `must` sees `num`'s aggregates like anyone; it has no POST route to size-limit."""
    app, client = service
    document = app.openapi()
    assert not [path for path, item in document["paths"].items() for op in item.values() if op.get("security")]
    assert post_paths(app) == []
    assert await oversized_answers(client, [], {}) == {}
    must = {"Authorization": f"Bearer {must_token}"}
    for url in ("/v1/analytics/institutions/num", "/v1/analytics/summary"):
        anonymous, with_token = await client.get(url), await client.get(url, headers=must)
        assert anonymous.status_code == with_token.status_code == 200, url
        same = [{k: v for k, v in r.json().items() if k != "generated_at"} for r in (anonymous, with_token)]
        assert same[0] == same[1], url
        assert "@" not in anonymous.text  # never an e-mail address
