"""Registration's HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.fuzz.harness import ApiFuzzer, Caller
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration


async def test_registration_api_survives_fuzzing(service_settings: dict[str, Any], callers: list[Caller]) -> None:
    app = create_app(RegistrationSettings(**service_settings))
    async with running_app(app) as client:
        fuzzer = ApiFuzzer(app, client)
        reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)
