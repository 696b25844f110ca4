"""CSV import of course completions (`POST /v1/completions/import`) against real NATS and PostgreSQL:
CourseCompleted lands on IIOE_EVENTS with the derived id as `Nats-Msg-Id` and the token's actor, and
a re-import publishes nothing new."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.tokens import TokenGrant, put_grant
from iioe.subjects import EVENTS_STREAM
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration

OPERATOR_TOKEN = "operator-token-for-completion-import-tests"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
COMPLETED = "iioe.events.must.course_completed.v1"


@pytest.fixture
async def must_token(nc: NATS, ref: str) -> dict[str, str]:
    token = f"must-{ref}-token"
    grant = TokenGrant(kind="institution", actor="partner-must", institution="must")
    await put_grant(nc.jetstream(), token, grant)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def http(infra: Any, database_url: str, ref: str, must_token: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    settings = RegistrationSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        outbox_poll_seconds=0.1,
        api_token=OPERATOR_TOKEN,
    )
    async with running_app(create_app(settings)) as client:
        yield client


async def register(http: httpx.AsyncClient, ref: str, n: int, institution: str = "must") -> str:
    body = {"institution": institution, "full_name": f"P {n}", "email": f"p{n}.{ref}@x.mn", "language": "mn"}
    response = await http.post("/v1/educators", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    return str(response.json()["educator_id"])


async def completions_of(nc: NATS, educator_id: str, n: int) -> list[StoredMessage]:
    async def probe() -> list[StoredMessage]:
        mine = [m for m in await stream_messages(nc, EVENTS_STREAM, COMPLETED) if m.json()["subject"] == educator_id]
        return mine if len(mine) >= n else []

    return await eventually(probe, what=f"{n} completion(s) of {educator_id}")


async def test_completions_import_publishes_once_with_derived_ids_and_the_tokens_actor(
    http: httpx.AsyncClient, nc: NATS, database_url: str, must_token: dict[str, str], ref: str
) -> None:
    edu = await register(http, ref, 1)
    foreign = await register(http, ref, 2, institution="num")
    csv_body = (
        "educator_id,course_id,score,completed_at,language\n"
        f"{edu},genai-fundamentals,92,2025-04-02T15:00:00+08:00,mn\n"
        f"{edu},teaching-with-ai,81.5,2025-04-03T09:30:00Z,\n"
        f"{foreign},genai-fundamentals,90,2025-04-02T15:00:00+08:00,en\n"
        f"{edu},future-classroom,high,2025-04-02T15:00:00+08:00,en\n"
    ).encode()
    headers = {**must_token, "content-type": "text/csv"}

    dry = await http.post("/v1/completions/import", params={"dry_run": "true"}, content=csv_body, headers=headers)
    assert dry.status_code == 200, dry.text
    assert [(r["row"], r["outcome"], r.get("error")) for r in dry.json()["rows"]] == [
        (2, "published", None),
        (3, "published", None),
        (4, "error", "educator_not_found"),
        (5, "error", "invalid_score"),
    ]

    real = await http.post("/v1/completions/import", content=csv_body, headers=headers)
    assert real.status_code == 200, real.text
    assert real.json()["summary"] == {"published": 2, "already_published": 0, "error": 2}
    ids = [r["event_id"] for r in real.json()["rows"][:2]]
    assert ids == [r["event_id"] for r in dry.json()["rows"][:2]]

    messages = await completions_of(nc, edu, 2)
    events = sorted((m.json() for m in messages), key=lambda e: e["data"]["course_id"])
    assert [e["id"] for e in events] == ids
    assert {m.headers["Nats-Msg-Id"] for m in messages} == set(ids)
    assert [e["actor"] for e in events] == ["partner-must", "partner-must"]
    assert events[0]["type"] == "org.iioe.learning.course_completed.v1"
    assert events[0]["data"] == {
        "educator_id": edu,
        "institution": "must",
        "course_id": "genai-fundamentals",
        "score": 92.0,
        "completed_at": "2025-04-02T15:00:00+08:00",
        "language": "mn",
    }

    again = await http.post(
        "/v1/completions/import", params={"institution": "must"}, content=csv_body, headers={**headers, **OPERATOR}
    )
    assert again.json()["summary"] == {"published": 0, "already_published": 2, "error": 2}
    await asyncio.sleep(0.5)  # several relay polls: nothing new may arrive
    assert len([m for m in await stream_messages(nc, EVENTS_STREAM, COMPLETED) if m.json()["subject"] == edu]) == 2
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "registration"})
    try:
        staged = await conn.fetchval("SELECT count(*) FROM outbox WHERE event_id = ANY($1::text[])", ids)
        actors = await conn.fetch("SELECT recorded_by FROM records WHERE kind = 'course_completion'")
    finally:
        await conn.close()
    assert staged == 2 and [a["recorded_by"] for a in actors] == ["partner-must", "partner-must"]

    assert (await http.post("/v1/completions/import", content=csv_body, headers=must_token)).status_code == 415
    other = await http.post("/v1/completions/import", params={"institution": "num"}, content=csv_body, headers=headers)
    assert other.status_code == 403
    unnamed = await http.post("/v1/completions/import", content=csv_body, headers={**headers, **OPERATOR})
    assert unnamed.status_code == 422 and unnamed.json()["error"]["code"] == "missing_institution"
    large = b"educator_id,course_id,score,completed_at\n" + b"x" * (5 * 1024 * 1024)
    assert (await http.post("/v1/completions/import", content=large, headers=headers)).status_code == 413


async def test_completions_import_streams_its_progress_as_ndjson(
    http: httpx.AsyncClient, nc: NATS, must_token: dict[str, str], ref: str
) -> None:
    edu = await register(http, ref, 1)
    rows = "".join(f"{edu},course-{n},{50 + n},2025-04-02T15:00:00+08:00,en\n" for n in range(30))
    csv_body = (
        "educator_id,course_id,score,completed_at,language\n" + rows + "edu-unknown,c,90,2025-04-02T15:00:00Z,\n"
    ).encode()
    headers = {**must_token, "content-type": "text/csv", "accept": "application/x-ndjson"}

    async with http.stream("POST", "/v1/completions/import", content=csv_body, headers=headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) async for line in response.aiter_lines() if line]

    assert [(line["row"], line["outcome"]) for line in lines[:-1]] == [
        *((n, "published") for n in range(2, 32)),
        (32, "error"),
    ]
    assert lines[-2]["error"] == "educator_not_found"
    assert lines[-1] == {
        "institution": "must",
        "dry_run": False,
        "summary": {"published": 30, "already_published": 0, "error": 1},
    }
    await completions_of(nc, edu, 30)

    bad_header = b"educator_id,course_id\nedu-1,c\n"
    async with http.stream("POST", "/v1/completions/import", content=bad_header, headers=headers) as response:
        ended = [json.loads(line) async for line in response.aiter_lines() if line]
    assert ended[-1]["error"]["code"] == "invalid_csv_header" and ended[-1]["summary"]["published"] == 0
