"""Notifications' HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL.

Webhook URLs are generated at random: host names resolve through a stub (never DNS), to an address the
SSRF guard refuses, so no generated webhook is ever registered for a real host."""

from __future__ import annotations

from typing import Any

import pytest

from services.notifications import targets
from services.notifications.main import create_app
from services.notifications.settings import NotificationsSettings
from tests.fuzz.harness import ApiFuzzer, Caller
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration


async def documentation_address(host: str, port: int) -> list[str]:
    return ["192.0.2.1"]  # TEST-NET-1: refused as a private/reserved target


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "system_resolver", documentation_address)


async def test_notifications_api_survives_fuzzing(service_settings: dict[str, Any], callers: list[Caller]) -> None:
    app = create_app(NotificationsSettings(**service_settings))
    async with running_app(app) as client:
        fuzzer = ApiFuzzer(app, client)
        reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)
