"""Analytics' HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL.

Every analytics route is public (aggregates, no personal data); the server-sent event stream never ends,
so it is left out of the generated requests (httpx's ASGI transport waits for the whole body)."""

from __future__ import annotations

from typing import Any

import pytest

from services.analytics.main import create_app
from services.analytics.settings import AnalyticsSettings
from tests.fuzz.harness import ApiFuzzer, Caller
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration

ENDLESS = {"GET /v1/analytics/stream"}


async def test_analytics_api_survives_fuzzing(service_settings: dict[str, Any], callers: list[Caller]) -> None:
    app = create_app(AnalyticsSettings(**service_settings))
    async with running_app(app) as client:
        fuzzer = ApiFuzzer(app, client, skip=ENDLESS)
        reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)
