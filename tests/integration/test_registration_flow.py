"""Registration end to end: a partner using raw nats-py and HTTP, as contract-v1 describes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from iioe.subjects import (
    CONTACTS_STREAM,
    EVENTS_STREAM,
    REGISTER_EDUCATOR,
    command_subject,
    contact_subject,
    event_subject,
)
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
OPERATOR = {"Authorization": "Bearer operator-token-for-registration-tests"}


def settings_for(infra: Infra, database_url: str, ref: str) -> RegistrationSettings:
    return RegistrationSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        outbox_poll_seconds=0.1,
        api_token=OPERATOR["Authorization"].removeprefix("Bearer "),
    )


async def request(nc: NATS, institution: str, body: object) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = await nc.request(command_subject(institution, REGISTER_EDUCATOR), raw, timeout=10)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def test_register_over_nats_emits_one_event_and_one_contact(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    email = f"sarnai.{ref}@must.edu.mn"
    async with running_app(create_app(settings_for(infra, database_url, ref))):
        first = await request(nc, "must", {"full_name": "Батын Сарнай", "email": email, "language": "mn"})
        assert first["status"] == "registered"
        educator_id = first["educator_id"]

        async def registered_events() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_subject("must", "educator_registered"))
            return [m for m in msgs if m.json()["data"]["educator_id"] == educator_id]

        events = await eventually(registered_events, what="EducatorRegistered on the stream")
        assert len(events) == 1
        event = events[0].json()
        assert events[0].headers["Nats-Msg-Id"] == event["id"]
        assert event["type"] == "org.iioe.registration.educator_registered.v1"
        assert event["specversion"] == "1.0" and event["subject"] == educator_id
        assert event["data"]["institution"] == "must" and event["data"]["role"] == "educator"
        assert email not in events[0].data.decode() and "Сарнай" not in events[0].data.decode()

        async def our_contacts() -> list[StoredMessage]:
            msgs = await stream_messages(nc, CONTACTS_STREAM, contact_subject("must"))
            return [m for m in msgs if m.json()["data"]["educator_id"] == educator_id]

        contacts = await eventually(our_contacts, what="the EducatorContact on IIOE_CONTACTS")
        assert len(contacts) == 1 and contacts[0].json()["data"]["email"] == email

        again = await request(nc, "must", {"full_name": "Batyn Sarnai", "email": email.upper(), "language": "en"})
        assert again == {"educator_id": educator_id, "status": "already_registered"}
        assert len(await registered_events()) == 1


@pytest.mark.parametrize(
    ("institution", "body", "code"),
    [
        ("must", {"full_name": "A B", "email": "not-an-email", "language": "mn"}, "invalid_email"),
        ("nowhere", {"full_name": "A B", "email": "a@b.mn", "language": "mn"}, "unknown_institution"),
        ("must", {"full_name": "A B", "email": "a@b.mn", "language": "de"}, "unsupported_language"),
        ("must", {"full_name": "A B", "email": "a@b.mn", "language": "mn", "role": "dean"}, "unknown_role"),
        ("must", {"email": "a@b.mn", "language": "mn"}, "missing_full_name"),
        (
            "must",
            {"full_name": "A", "email": "a@b.mn", "language": "mn", "registered_at": "2999-01-01T00:00:00Z"},
            "registered_at_in_future",
        ),
        ("must", b"{not json", "invalid_json"),
    ],
)
async def test_invalid_registration_gets_error_reply_with_code(
    infra: Infra, database_url: str, nc: NATS, ref: str, institution: str, body: object, code: str
) -> None:
    async with running_app(create_app(settings_for(infra, database_url, ref))):
        reply = await request(nc, institution, body)
    assert reply["error"]["code"] == code
    assert reply["error"]["message"]


async def test_http_api_registers_lists_and_reads(infra: Infra, database_url: str, ref: str) -> None:
    async with running_app(create_app(settings_for(infra, database_url, ref))) as http:
        institutions = (await http.get("/v1/institutions")).json()  # public: no token
        http.headers.update(OPERATOR)
        assert len(institutions) == 38
        assert {"code": "must", "name": "Mongolian University of Science and Technology"}.items() <= next(
            i for i in institutions if i["code"] == "must"
        ).items()
        assert all(i["source"] or i["provisional"] is True for i in institutions)  # provenance, or honestly provisional

        body = {
            "institution": "num",
            "full_name": "Dorj Bat",
            "email": f"dorj.{ref}@num.edu.mn",
            "language": "en",
            "role": "master_teacher",
            "registered_at": "2025-03-14T09:30:00+08:00",
        }
        created = await http.post("/v1/educators", json=body)
        assert created.status_code == 201, created.text
        educator_id = created.json()["educator_id"]
        repeat = await http.post("/v1/educators", json=body)
        assert repeat.status_code == 200 and repeat.json() == {
            "educator_id": educator_id,
            "status": "already_registered",
        }

        got = (await http.get(f"/v1/educators/{educator_id}")).json()
        assert got["role"] == "master_teacher" and got["registered_at"].startswith("2025-03-14T01:30:00")

        bad = await http.post("/v1/educators", json={**body, "email": "x@"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_email"
        missing = await http.get("/v1/educators/edu-nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "educator_not_found"
        health = await http.get("/healthz")
        assert health.status_code == 200 and health.json()["nats"] == "ok"


async def test_concurrent_requests_are_all_answered_and_one_email_is_one_educator(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    """More requests at once than the responder handles (16 here): the rest wait, none is lost or doubled."""
    same = {"full_name": "Oyun Bold", "email": f"oyun.{ref}@must.edu.mn", "language": "mn"}
    others = [{"full_name": f"E {n}", "email": f"e{n}.{ref}@must.edu.mn", "language": "en"} for n in range(30)]
    settings = settings_for(infra, database_url, ref).model_copy(update={"command_max_in_flight": 16})
    async with running_app(create_app(settings)):
        replies = await asyncio.gather(*(request(nc, "must", body) for body in [same] * 20 + others))
        same_replies, other_replies = replies[:20], replies[20:]
        assert len({r["educator_id"] for r in same_replies}) == 1
        assert sorted(r["status"] for r in same_replies) == ["already_registered"] * 19 + ["registered"]
        assert all(r["status"] == "registered" for r in other_replies)
        assert len({r["educator_id"] for r in other_replies}) == 30

        educator_id = same_replies[0]["educator_id"]

        async def registered_events() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, "iioe.events.must.educator_registered.v1")
            return [m for m in msgs if m.json()["data"]["educator_id"] in {r["educator_id"] for r in replies}]

        found = await eventually(lambda: _at_least(registered_events, 31), what="31 EducatorRegistered events")
        assert found is not None
        events: list[StoredMessage] = found
        assert sum(1 for m in events if m.json()["data"]["educator_id"] == educator_id) == 1
        assert len(events) == 31


async def _at_least(probe: Callable[[], Awaitable[list[StoredMessage]]], n: int) -> list[StoredMessage] | None:
    found = await probe()
    return found if len(found) >= n else None
