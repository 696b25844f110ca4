"""Registration over HTTP and NATS against real servers: auth (contract §8), change_role and erasure
(§9), cascade and portfolio intake, institution operations (search, CSV import, CSV/XLSX export)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS
from openpyxl import load_workbook

from iioe.runtime.tokens import TokenGrant, put_grant
from iioe.subjects import EVENTS_STREAM
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import eventually, running_app, stream_messages

pytestmark = pytest.mark.integration

OPERATOR_TOKEN = "operator-token-for-registration-http-tests"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
async def tokens(nc: NATS, ref: str) -> dict[str, dict[str, str]]:
    """Bearer headers: the operator's, and institution tokens of `must` and `num` (in the KV bucket)."""
    headers = {"operator": OPERATOR}
    for institution in ("must", "num"):
        token = f"{institution}-{ref}-token"
        grant = TokenGrant(kind="institution", actor=f"partner-{institution}", institution=institution)
        await put_grant(nc.jetstream(), token, grant)
        headers[institution] = {"Authorization": f"Bearer {token}"}
    return headers


@pytest.fixture
async def http(infra, database_url: str, ref: str, tokens: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    settings = RegistrationSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        outbox_poll_seconds=0.1,
        api_token=OPERATOR_TOKEN,
    )
    async with running_app(create_app(settings)) as client:
        yield client


@pytest.fixture
async def db(database_url: str, http: httpx.AsyncClient) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "registration"})
    yield conn
    await conn.close()


def person(ref: str, n: int = 0, institution: str = "must", **extra: Any) -> dict[str, Any]:
    return {
        "institution": institution,
        "full_name": f"Person {n} {ref}",
        "email": f"p{n}.{ref}@{institution}.edu.mn",
        "language": "mn",
        **extra,
    }


async def register(http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str] = OPERATOR) -> str:
    response = await http.post("/v1/educators", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return str(response.json()["educator_id"])


async def events_about(nc: NATS, subject: str, educator_id: str, n: int = 1) -> list[dict[str, Any]]:
    """The events on `subject` about `educator_id`, once at least `n` are there."""

    async def probe() -> list[dict[str, Any]]:
        found = [m.json() for m in await stream_messages(nc, EVENTS_STREAM, subject)]
        mine = [e for e in found if e.get("subject") == educator_id]
        return mine if len(mine) >= n else []

    return await eventually(probe, what=f"{n} event(s) on {subject} about {educator_id}")


# --- authentication (contract section 8) --------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "unauthorized"),
        (b"Bearer \xd1\x82\xd0\xbe\xd0\xba\xd0\xb5\xd0\xbd", 401, "invalid_token"),  # non-ASCII
        (b"Bearer two words", 401, "invalid_token"),
        (b"Basic dXNlcjpwYXNz", 401, "invalid_token"),
        (b"Bearer unknown-token", 403, "forbidden"),
    ],
)
async def test_person_data_needs_a_valid_bearer_token(
    http: httpx.AsyncClient, ref: str, authorization: bytes | None, status: int, code: str
) -> None:
    educator_id = await register(http, person(ref))
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, url, body in [
        ("POST", "/v1/educators", person(ref, 1)),
        ("GET", f"/v1/educators/{educator_id}", None),
        ("GET", "/v1/educators", None),
        ("PUT", f"/v1/educators/{educator_id}/role", {"role": "master_teacher"}),
        ("DELETE", f"/v1/educators/{educator_id}", None),
    ]:
        response = await http.request(method, url, json=body, headers=headers)  # type: ignore[arg-type]
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (method, url)
    assert (await http.get("/v1/institutions")).status_code == 200  # the catalogue stays public


async def test_the_token_is_checked_before_the_body(http: httpx.AsyncClient) -> None:
    json_type = {"content-type": "application/json"}
    assert (await http.post("/v1/educators", content=b"{not json", headers=json_type)).status_code == 401
    with_token = await http.post("/v1/educators", content=b"{not json", headers={**OPERATOR, **json_type})
    assert (with_token.status_code, with_token.json()["error"]["code"]) == (422, "invalid_json")
    listed = await http.post("/v1/cascade/sessions", json=[1, 2], headers=OPERATOR)
    assert (listed.status_code, listed.json()["error"]["code"]) == (422, "invalid_request")


async def test_an_institution_token_reaches_only_its_own_educators(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], ref: str
) -> None:
    created = await http.post("/v1/educators", json=person(ref), headers=tokens["must"])
    assert created.status_code == 201
    educator_id = created.json()["educator_id"]
    foreign = await http.post("/v1/educators", json=person(ref, institution="num"), headers=tokens["must"])
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "forbidden"

    own = await http.get(f"/v1/educators/{educator_id}", headers=tokens["must"])
    assert own.status_code == 200 and own.json()["email"] == person(ref)["email"]
    other = await http.get(f"/v1/educators/{educator_id}", headers=tokens["num"])
    assert other.status_code == 403 and "email" not in other.text
    role = await http.put(f"/v1/educators/{educator_id}/role", json={"role": "master_teacher"}, headers=tokens["num"])
    assert role.status_code == 403
    assert (await http.get(f"/v1/educators/{educator_id}", headers=OPERATOR)).status_code == 200
    erase = await http.delete(f"/v1/educators/{educator_id}", headers=tokens["must"])
    assert erase.status_code == 403  # erasure is an operator's (scope admin)


async def test_bodies_over_64_kib_are_refused_with_413(http: httpx.AsyncClient, ref: str) -> None:
    big = {**person(ref), "padding": "x" * (64 * 1024)}
    response = await http.post("/v1/educators", json=big, headers=OPERATOR)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(person(ref))[:-1].encode()
        for _ in range(70):
            yield b" " * 1024

    streamed = await http.post(
        "/v1/educators", content=chunks(), headers={**OPERATOR, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert (await http.post("/v1/educators", json=person(ref), headers=OPERATOR)).status_code == 201


# --- change_role (contract section 9) -----------------------------------------------------------


async def change_role(nc: NATS, institution: str, body: object) -> dict[str, Any]:
    reply = await nc.request(f"iioe.commands.{institution}.change_role", json.dumps(body).encode(), timeout=10)
    return json.loads(reply.data)


async def test_change_role_over_nats_emits_one_event_per_change(http: httpx.AsyncClient, nc: NATS, ref: str) -> None:
    educator_id = await register(http, person(ref))
    body = {"educator_id": educator_id, "role": "master_teacher"}
    assert await change_role(nc, "must", body) == {**body, "status": "changed"}
    assert await change_role(nc, "must", body) == {**body, "status": "unchanged"}
    foreign = await change_role(nc, "num", body)
    assert foreign["error"]["code"] == "educator_not_found"
    assert (await change_role(nc, "must", {**body, "educator_id": "edu-nope"}))["error"]["code"] == (
        "educator_not_found"
    )
    assert (await change_role(nc, "must", {**body, "role": "dean"}))["error"]["code"] == "unknown_role"

    (event,) = await events_about(nc, "iioe.events.must.educator_role_changed.v1", educator_id)
    assert event["type"] == "org.iioe.registration.educator_role_changed.v1"
    assert event["data"]["role"] == "master_teacher" and event["data"]["institution"] == "must"
    got = (await http.get(f"/v1/educators/{educator_id}", headers=OPERATOR)).json()
    assert got["role"] == "master_teacher"


async def test_concurrent_role_changes_emit_exactly_one_event(http: httpx.AsyncClient, nc: NATS, ref: str) -> None:
    """The educator row is locked for the change: of many identical requests at once, one changes it."""
    educator_id = await register(http, person(ref))
    body = {"educator_id": educator_id, "role": "master_teacher"}
    replies = await asyncio.gather(*(change_role(nc, "must", body) for _ in range(12)))
    assert sorted(r["status"] for r in replies) == ["changed"] + ["unchanged"] * 11
    assert len(await events_about(nc, "iioe.events.must.educator_role_changed.v1", educator_id)) == 1


async def test_change_role_over_http_records_the_actor(
    http: httpx.AsyncClient, nc: NATS, db: asyncpg.Connection, tokens: dict[str, dict[str, str]], ref: str
) -> None:
    educator_id = await register(http, person(ref))
    url = f"/v1/educators/{educator_id}/role"
    changed = await http.put(url, json={"role": "master_teacher"}, headers=tokens["must"])
    assert changed.json() == {"educator_id": educator_id, "role": "master_teacher", "status": "changed"}
    same = await http.put(url, json={"role": "master_teacher"}, headers=OPERATOR)
    assert same.json()["status"] == "unchanged"
    bad = await http.put(url, json={"role": "rector"}, headers=OPERATOR)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "unknown_role"
    missing = await http.put("/v1/educators/edu-nope/role", json={"role": "educator"}, headers=OPERATOR)
    assert missing.status_code == 404
    audit = await db.fetch("SELECT action, actor, detail FROM educator_audit WHERE educator_id = $1", educator_id)
    assert [(r["action"], r["actor"]) for r in audit] == [("role_changed", "partner-must")]
    await events_about(nc, "iioe.events.must.educator_role_changed.v1", educator_id)


# --- erasure ----------------------------------------------------------------------------------------


async def test_erasure_deletes_personal_data_and_emits_educator_erased(
    http: httpx.AsyncClient, nc: NATS, db: asyncpg.Connection, ref: str
) -> None:
    body = person(ref)
    educator_id = await register(http, body)
    await events_about(nc, "iioe.events.must.educator_registered.v1", educator_id)

    erased = await http.delete(f"/v1/educators/{educator_id}", headers=OPERATOR)
    assert erased.status_code == 200 and erased.json()["status"] == "erased"
    got = (await http.get(f"/v1/educators/{educator_id}", headers=OPERATOR)).json()
    assert got["full_name"] is None and got["email"] is None and got["erased_at"]
    assert got["institution"] == "must"

    (event,) = await events_about(nc, "iioe.events.must.educator_erased.v1", educator_id)
    assert {k: event["data"][k] for k in ("educator_id", "institution")} == {
        "educator_id": educator_id,
        "institution": "must",
    }
    assert datetime.fromisoformat(event["data"]["erased_at"]) == datetime.fromisoformat(got["erased_at"])
    row = await db.fetchrow("SELECT full_name, email, email_key FROM educators WHERE educator_id = $1", educator_id)
    assert row is not None and dict(row) == {"full_name": None, "email": None, "email_key": None}
    outbox = await db.fetch("SELECT payload FROM outbox")
    assert not any(body["email"].encode() in r["payload"] for r in outbox)  # the contact row went too

    again = await http.delete(f"/v1/educators/{educator_id}", headers=OPERATOR)
    assert again.json()["status"] == "already_erased"
    assert len(await events_about(nc, "iioe.events.must.educator_erased.v1", educator_id)) == 1
    renewed = await register(http, body)
    assert renewed != educator_id  # the same e-mail is a new educator now
    assert (await http.delete("/v1/educators/edu-nope", headers=OPERATOR)).status_code == 404
    listed = (await http.get("/v1/educators", params={"q": ref}, headers=OPERATOR)).json()
    assert [e["educator_id"] for e in listed["items"]] == [renewed]


async def test_cli_erase_calls_the_api_with_the_operator_token(
    http: httpx.AsyncClient, tmp_path: Any, ref: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iioe_tools.cli.educators import erase_educator

    educator_id = await register(http, person(ref))
    (tmp_path / "operator-token").write_text(OPERATOR_TOKEN + "\n")
    monkeypatch.setenv("IIOE_DATA_DIR", str(tmp_path))
    result = await erase_educator(educator_id, url="http://test", transport=http._transport)
    assert result["status"] == "erased"
    assert (await erase_educator(educator_id, url="http://test", transport=http._transport))["status"] == (
        "already_erased"
    )


# --- cascade and portfolio intake ---------------------------------------------------------------------


async def test_cascade_and_portfolio_records_become_events(
    http: httpx.AsyncClient, nc: NATS, tokens: dict[str, dict[str, str]], ref: str
) -> None:
    teacher = await register(http, person(ref, 1, role="master_teacher"))
    plain = await register(http, person(ref, 2))
    trainee = await register(http, person(ref, 3, institution="num"))
    session = {
        "institution": "must",
        "master_teacher_id": teacher,
        "region": "Ulaanbaatar",
        "mode": "hybrid",
        "held_on": "2025-05-30",
        "language": "mn",
    }
    created = await http.post("/v1/cascade/sessions", json=session, headers=tokens["must"])
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]
    not_master = await http.post(
        "/v1/cascade/sessions", json={**session, "master_teacher_id": plain}, headers=tokens["must"]
    )
    assert (not_master.status_code, not_master.json()["error"]["code"]) == (422, "not_a_master_teacher")
    foreign = await http.post("/v1/cascade/sessions", json=session, headers=tokens["num"])
    assert foreign.status_code == 403
    bad_mode = await http.post("/v1/cascade/sessions", json={**session, "mode": "radio"}, headers=OPERATOR)
    assert bad_mode.json()["error"]["code"] == "invalid_mode"

    url = f"/v1/cascade/sessions/{session_id}/attendance"
    attended = await http.post(url, json={"educator_id": trainee}, headers=tokens["must"])
    assert attended.status_code == 201 and attended.json()["institution"] == "num"
    repeat = await http.post(url, json={"educator_id": trainee}, headers=tokens["num"])
    assert repeat.status_code == 200 and repeat.json()["status"] == "already_recorded"
    unknown = await http.post(
        "/v1/cascade/sessions/ses-nope/attendance", json={"educator_id": trainee}, headers=OPERATOR
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "session_not_found")

    entry = {
        "kind": "lesson_plan",
        "title": "Prompting in statics",
        "link": "https://lms.must.edu.mn/x",
        "added_on": "2025-05-31",
    }
    added = await http.post(f"/v1/educators/{trainee}/portfolio", json=entry, headers=tokens["num"])
    assert added.status_code == 201 and added.json()["entry_id"]
    assert (
        await http.post(f"/v1/educators/{trainee}/portfolio", json=entry, headers=tokens["must"])
    ).status_code == 403
    report = {"integrates_ai": True, "disciplines": ["mechanics"], "reported_on": "2025-06-01"}
    reported = await http.post(f"/v1/educators/{trainee}/practice-reports", json=report, headers=tokens["num"])
    assert reported.status_code == 201

    (held,) = await events_about(nc, "iioe.events.must.training_session_held.v1", teacher)
    assert held["data"] == {**session, "session_id": session_id}
    (attendance,) = await events_about(nc, "iioe.events.num.trainee_attended.v1", trainee)
    assert attendance["data"] == {"session_id": session_id, "institution": "num", "educator_id": trainee}
    (portfolio,) = await events_about(nc, "iioe.events.num.portfolio_entry_added.v1", trainee)
    assert portfolio["type"] == "org.iioe.portfolio.entry_added.v1" and portfolio["data"]["kind"] == "lesson_plan"
    (practice,) = await events_about(nc, "iioe.events.num.practice_integration_reported.v1", trainee)
    assert practice["data"]["integrates_ai"] is True


# --- institution operations -------------------------------------------------------------------------


async def test_search_pages_and_scopes_to_the_tokens_institution(
    http: httpx.AsyncClient, tokens: dict[str, dict[str, str]], ref: str
) -> None:
    for n in range(5):
        await register(http, person(ref, n, role="master_teacher" if n == 4 else "educator"))
    await register(http, person(ref, 9, institution="num"))

    first = (await http.get("/v1/educators", params={"page_size": 2, "q": ref}, headers=tokens["must"])).json()
    assert first["total"] == 5 and len(first["items"]) == 2 and first["page"] == 1
    last = (await http.get("/v1/educators", params={"page": 3, "page_size": 2}, headers=tokens["must"])).json()
    assert [e["full_name"] for e in last["items"]] == [f"Person 4 {ref}"]
    masters = (await http.get("/v1/educators", params={"role": "master_teacher"}, headers=tokens["must"])).json()
    assert masters["total"] == 1
    by_email = (await http.get("/v1/educators", params={"q": f"P9.{ref}@"}, headers=OPERATOR)).json()
    assert [e["institution"] for e in by_email["items"]] == ["num"]
    foreign = await http.get("/v1/educators", params={"institution": "num"}, headers=tokens["must"])
    assert foreign.status_code == 403
    too_big = await http.get("/v1/educators", params={"page_size": 1000}, headers=OPERATOR)
    assert too_big.status_code == 422


async def test_csv_import_dry_run_then_real_then_export(
    http: httpx.AsyncClient, nc: NATS, tokens: dict[str, dict[str, str]], ref: str
) -> None:
    existing = await register(http, person(ref, 0))
    csv_body = (
        "full_name,email,language,role\n"
        f"Person 0 {ref},P0.{ref}@must.edu.mn,mn,\n"
        f"New One {ref},new1.{ref}@must.edu.mn,en,master_teacher\n"
        f"Bad Mail {ref},not-an-email,en,\n"
        f"=HYPERLINK(1) {ref},new2.{ref}@must.edu.mn,ru,\n"
    ).encode()
    headers = {**tokens["must"], "content-type": "text/csv"}
    dry = await http.post("/v1/educators/import", params={"dry_run": "true"}, content=csv_body, headers=headers)
    assert dry.status_code == 200, dry.text
    assert [(r["row"], r["outcome"]) for r in dry.json()["rows"]] == [
        (2, "already_registered"),
        (3, "registered"),
        (4, "error"),
        (5, "registered"),
    ]
    assert dry.json()["rows"][2]["error"] == "invalid_email"
    assert (await http.get("/v1/educators", params={"q": ref}, headers=OPERATOR)).json()["total"] == 1

    real = await http.post("/v1/educators/import", content=csv_body, headers=headers)
    assert real.json()["summary"] == {"registered": 2, "already_registered": 1, "error": 1}
    assert real.json()["rows"][0]["educator_id"] == existing
    again = await http.post("/v1/educators/import", content=csv_body, headers=headers)
    assert again.json()["summary"] == {"registered": 0, "already_registered": 3, "error": 1}
    new_id = real.json()["rows"][1]["educator_id"]
    await events_about(nc, "iioe.events.must.educator_registered.v1", new_id)

    assert (await http.post("/v1/educators/import", content=csv_body, headers=tokens["must"])).status_code == 415
    foreign = await http.post("/v1/educators/import", params={"institution": "num"}, content=csv_body, headers=headers)
    assert foreign.status_code == 403
    large = b"full_name,email,language\n" + b"x" * (5 * 1024 * 1024)
    assert (await http.post("/v1/educators/import", content=large, headers=headers)).status_code == 413

    exported = await http.get("/v1/educators/export", params={"format": "csv"}, headers=tokens["must"])
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    text = exported.content.decode("utf-8-sig")
    assert f"new1.{ref}@must.edu.mn" in text and f"'=HYPERLINK(1) {ref}" in text
    assert "not-an-email" not in text
    xlsx = await http.get("/v1/educators/export", params={"format": "xlsx"}, headers=tokens["must"])
    rows = list(load_workbook(io.BytesIO(xlsx.content), read_only=True)["educators"].iter_rows(values_only=True))
    assert rows[0][0] == "educator_id" and len(rows) == 4  # header + the three educators of must
    assert (
        await http.get("/v1/educators/export", params={"institution": "num"}, headers=tokens["must"])
    ).status_code == 403
    assert (await http.get("/v1/educators/export")).status_code == 401


# --- found by the HTTP fuzz tests (tests/fuzz) ------------------------------------------------------


async def test_values_postgresql_cannot_take_are_4xx_not_500(http: httpx.AsyncClient, ref: str) -> None:
    """NUL characters, a page past bigint and an unknown institution in a file name were server errors."""
    nul = await http.get("/v1/educators", params={"q": "a\x00b"}, headers=OPERATOR)
    assert (nul.status_code, nul.json()["error"]["code"]) == (422, "invalid_character")
    by_path = await http.get("/v1/educators/edu-%00", headers=OPERATOR)
    assert (by_path.status_code, by_path.json()["error"]["code"]) == (422, "invalid_character")
    body = await http.post("/v1/educators", json=person(ref, full_name="Nul\x00Name"), headers=OPERATOR)
    assert body.status_code == 422 and body.json()["error"]["code"] in ("invalid_character", "invalid_full_name")
    far = await http.get("/v1/educators", params={"page": 10**18}, headers=OPERATOR)
    assert (far.status_code, far.json()["error"]["code"]) == (422, "invalid_request")
    unknown = await http.get("/v1/educators/export", params={"institution": "\U000d9fd1"}, headers=OPERATOR)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_institution")
    assert (await http.get("/v1/educators", params={"institution": "nowhere"}, headers=OPERATOR)).status_code == 404
    assert (await http.get("/v1/educators/export", params={"institution": "must"}, headers=OPERATOR)).status_code == 200
