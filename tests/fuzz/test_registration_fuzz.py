"""Registration's HTTP API under schemathesis (contract section 8), against real NATS and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.registration.http import IMPORT_MAX_BYTES, IMPORT_PATH
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.fuzz.conftest import OPERATOR
from tests.fuzz.harness import ApiFuzzer, Caller, oversized_answers, post_paths
from tests.support.helpers import running_app

pytestmark = pytest.mark.integration


@pytest.fixture
async def service(service_settings: dict[str, Any]) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(RegistrationSettings(**service_settings))
    async with running_app(app) as client:
        yield app, client


async def registered(client: httpx.AsyncClient, institution: str, ref: str) -> str:
    person = {
        "institution": institution,
        "full_name": f"P {ref}",
        "email": f"{ref}@{institution}.edu.mn",
        "language": "en",
    }
    response = await client.post("/v1/educators", json=person, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return str(response.json()["educator_id"])


async def test_registration_api_survives_fuzzing(
    service: tuple[FastAPI, httpx.AsyncClient], callers: list[Caller], ref: str
) -> None:
    app, client = service
    educators = [await registered(client, "must", ref), await registered(client, "num", ref)]
    fuzzer = ApiFuzzer(app, client, known={"educator_id": educators, "code": ["must", "num"]})
    reports = [await fuzzer.run(caller) for caller in callers]
    for caller, report in zip(callers, reports, strict=True):
        print(caller.name, report.summary())
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n\n".join(failures)


async def test_registration_refuses_bodies_over_64_kib(service: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """413 on every POST route; the CSV import streams under its own limit (4 MiB) instead."""
    app, client = service
    paths = [p for p in post_paths(app) if p != IMPORT_PATH]
    assert len(paths) >= 4
    assert await oversized_answers(client, paths, OPERATOR) == {}
    csv = {**OPERATOR, "Content-Type": "text/csv"}
    huge = await client.post(
        IMPORT_PATH, params={"institution": "must"}, content=b"x" * (IMPORT_MAX_BYTES + 1), headers=csv
    )
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "payload_too_large")


async def test_a_must_token_cannot_reach_num_educators(
    service: tuple[FastAPI, httpx.AsyncClient], must_token: str, ref: str
) -> None:
    _, client = service
    must = {"Authorization": f"Bearer {must_token}"}
    person = {"institution": "num", "full_name": f"Num {ref}", "email": f"{ref}@num.edu.mn", "language": "mn"}
    created = await client.post("/v1/educators", json=person, headers=OPERATOR)
    assert created.status_code == 201, created.text
    educator_id = created.json()["educator_id"]
    for method, url, params, body in [
        ("GET", f"/v1/educators/{educator_id}", None, None),
        ("PUT", f"/v1/educators/{educator_id}/role", None, {"role": "master_teacher"}),
        ("POST", f"/v1/educators/{educator_id}/portfolio", None, {"title": "x", "kind": "lesson_plan"}),
        ("GET", "/v1/educators", {"institution": "num"}, None),
        ("GET", "/v1/educators/export", {"institution": "num"}, None),
        ("POST", "/v1/educators", None, {**person, "email": f"other.{ref}@num.edu.mn"}),
        ("DELETE", f"/v1/educators/{educator_id}", None, None),
    ]:
        response = await client.request(method, url, params=params, json=body, headers=must)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden"), (method, url)
        assert ref not in response.text  # nothing of the person leaks
    listed = await client.get("/v1/educators", headers=must)  # its own institution only
    assert listed.status_code == 200 and educator_id not in listed.text
    assert (await client.get(f"/v1/educators/{educator_id}", headers=OPERATOR)).status_code == 200
