"""The NATS entry point without a server: reply bytes of contract section 4, and bounded concurrency."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from iioe.commands import CommandRejected
from iioe.subjects import MAX_EVENT_BYTES, command_institution
from services.registration.handlers import CommandResponder, on_change_role, on_register_educator, register_command
from services.registration.tests.fakes import FakeNats, FakeUnitOfWork, GatedUnitOfWork
from services.registration.usecases import Registrations
from tests.support.helpers import eventually

SUBJECT = "iioe.commands.must.register_educator"
BODY = json.dumps({"full_name": "Батын Сарнай", "email": "sarnai@must.edu.mn", "language": "mn"}).encode()


def registrations_on(uow: Any) -> Registrations:
    return Registrations(uow, {"must"}, source="urn:test", new_id=lambda: "edu-1")


async def test_reply_bytes_match_the_contract() -> None:
    registrations = registrations_on(FakeUnitOfWork())
    assert await on_register_educator(registrations, SUBJECT, BODY) == (
        b'{"educator_id": "edu-1", "status": "registered"}'
    )
    assert await on_register_educator(registrations, SUBJECT, BODY) == (
        b'{"educator_id": "edu-1", "status": "already_registered"}'
    )


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        (SUBJECT, b"{not json", "invalid_json"),
        (SUBJECT, b"\xff\xfe", "invalid_json"),
        (SUBJECT, b"[1, 2]", "invalid_request"),
        (SUBJECT, b" " * (MAX_EVENT_BYTES + 1), "payload_too_large"),
        (SUBJECT, json.dumps({"full_name": "A", "email": "a@", "language": "mn"}).encode(), "invalid_email"),
        ("iioe.commands.nowhere.register_educator", BODY, "unknown_institution"),
        ("iioe.commands.MUST.register_educator", BODY, "unknown_institution"),
    ],
)
async def test_rejections_are_error_replies(subject: str, body: bytes, code: str) -> None:
    uow = FakeUnitOfWork()
    reply = json.loads(await on_register_educator(registrations_on(uow), subject, body))
    assert list(reply) == ["error"] and list(reply["error"]) == ["code", "message"]
    assert reply["error"]["code"] == code and reply["error"]["message"]
    assert uow.events == []


async def test_a_failing_store_is_answered_with_internal_error() -> None:
    class BrokenUnitOfWork(FakeUnitOfWork):
        def transaction(self) -> Any:
            raise ConnectionError("database unreachable")

    with capture_logs() as logs:
        reply = json.loads(await on_register_educator(registrations_on(BrokenUnitOfWork()), SUBJECT, BODY))
    assert reply["error"]["code"] == "internal_error" and "ConnectionError" in reply["error"]["message"]
    errors = [(e["event"], e["subject"]) for e in logs if e["log_level"] == "error"]
    assert errors == [("registration failed", SUBJECT)]  # once: its batch failed, then it failed alone
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "registration batch failed, each one runs alone"
    ]


async def test_responder_subscribes_in_its_queue_group_and_flushes() -> None:
    nc = FakeNats()
    responder = CommandResponder(registrations_on(FakeUnitOfWork()), queue="registration")
    assert responder.health()["ok"] is False
    await responder.start(nc)  # type: ignore[arg-type]
    assert [(s.subject, s.queue) for s in nc.subscriptions] == [
        ("iioe.commands.*.register_educator", "registration"),
        ("iioe.commands.*.change_role", "registration"),
    ]
    assert nc.flushes == 2  # after both subscriptions: the second PONG proves the server has them
    sub = nc.subscriptions[0]
    assert responder.health()["ok"] is True

    await sub.cb(nc.request(SUBJECT, BODY, reply="_INBOX.1"))
    await until(lambda: nc.published, "the reply")
    (published,) = nc.published
    assert published.subject == "_INBOX.1" and json.loads(published.payload)["status"] == "registered"
    assert published.headers == {"content-type": "application/json"}

    await responder.stop()
    assert all(s.drained for s in nc.subscriptions) and responder.health()["ok"] is False


async def test_at_most_max_in_flight_requests_are_handled_at_once() -> None:
    uow = GatedUnitOfWork()
    nc = FakeNats()
    registrations = Registrations(uow, {"must"}, source="urn:test", batch_size=1)  # one transaction per request
    responder = CommandResponder(registrations, queue="q", max_in_flight=3)
    await responder.start(nc)  # type: ignore[arg-type]
    sub = nc.subscriptions[0]

    async def deliver_all() -> None:  # as the subscription's reader does: one callback after another
        for n in range(8):
            body = json.dumps({"full_name": "A B", "email": f"a{n}@must.edu.mn", "language": "mn"}).encode()
            await sub.cb(nc.request(SUBJECT, body, reply=f"_INBOX.{n}"))

    reader = asyncio.create_task(deliver_all())
    await until(lambda: uow.open == 3, "three requests in flight")
    assert not reader.done()  # the fourth waits for a free slot: back-pressure, not a pile of tasks
    assert responder.health()["commands"]["in_flight"] == 3
    uow.gate.set()
    await asyncio.wait_for(reader, 5)
    await until(lambda: len(nc.published) == 8, "eight replies")
    assert uow.most_open == 3
    assert sorted(json.loads(p.payload)["status"] for p in nc.published) == ["registered"] * 8
    await responder.stop()


async def test_stop_answers_requests_already_received() -> None:
    uow = GatedUnitOfWork()
    nc = FakeNats()
    responder = CommandResponder(registrations_on(uow), queue="q")
    await responder.start(nc)  # type: ignore[arg-type]
    await nc.subscriptions[0].cb(nc.request(SUBJECT, BODY, reply="_INBOX.1"))
    stopping = asyncio.create_task(responder.stop())
    await until(lambda: nc.subscriptions[0].drained, "the subscription drained")
    assert not stopping.done() and nc.published == []
    uow.gate.set()
    await asyncio.wait_for(stopping, 5)
    assert [json.loads(p.payload)["status"] for p in nc.published] == ["registered"]


async def until(condition: Callable[[], object], what: str) -> None:
    async def probe() -> object:
        return condition()

    await eventually(probe, timeout=5, interval=0.005, what=what)


@pytest.mark.parametrize(
    ("subject", "institution"),
    [
        ("iioe.commands.must.register_educator", "must"),
        ("iioe.commands.MUST.register_educator", "MUST"),
        ("iioe.commands.must", None),
        ("iioe.events.must.register_educator", None),
        ("iioe.commands.must.register_educator.extra", None),
    ],
)
def test_institution_comes_from_the_command_subject(subject: str, institution: str | None) -> None:
    assert command_institution(subject) == institution


def test_a_request_on_a_non_command_subject_is_an_invalid_request() -> None:
    with pytest.raises(CommandRejected) as caught:
        register_command("iioe.commands.must", BODY)
    assert caught.value.code == "invalid_request"


async def test_replies_steered_outside_an_inbox_are_refused_and_change_nothing() -> None:
    uow = FakeUnitOfWork()
    nc = FakeNats()
    responder = CommandResponder(registrations_on(uow), queue="registration")
    await responder.start(nc)  # type: ignore[arg-type]
    sub = nc.subscriptions[0]
    for reply in ("iioe.events.must.certificate_issued.v1", "", "_INBOX.>", "iioe.contacts.must.x"):
        await sub.cb(nc.request(SUBJECT, BODY, reply=reply))
    await sub.cb(nc.request(SUBJECT, BODY, reply="_INBOX_partner-must.abc"))
    await until(lambda: nc.published, "the one legitimate reply")
    await responder.stop()
    assert [p.subject for p in nc.published] == ["_INBOX_partner-must.abc"]
    assert len(uow.events) == 2  # registered once (EducatorRegistered + EducatorContact)


CHANGE = "iioe.commands.must.change_role"


async def registered(uow: FakeUnitOfWork) -> Registrations:
    registrations = registrations_on(uow)
    await on_register_educator(registrations, SUBJECT, BODY)
    return registrations


async def test_change_role_reply_bytes_match_the_contract() -> None:
    uow = FakeUnitOfWork()
    registrations = await registered(uow)
    body = json.dumps({"educator_id": "edu-1", "role": "master_teacher"}).encode()
    assert await on_change_role(registrations, CHANGE, body) == (
        b'{"educator_id": "edu-1", "role": "master_teacher", "status": "changed"}'
    )
    assert await on_change_role(registrations, CHANGE, body) == (
        b'{"educator_id": "edu-1", "role": "master_teacher", "status": "unchanged"}'
    )
    assert [a.actor for a in uow.audit] == ["nats:must"]


@pytest.mark.parametrize(
    ("subject", "body", "code"),
    [
        (CHANGE, b"{not json", "invalid_json"),
        (CHANGE, b"[]", "invalid_request"),
        (CHANGE, b'{"role": "master_teacher"}', "missing_educator_id"),
        (CHANGE, b'{"educator_id": "  ", "role": "master_teacher"}', "missing_educator_id"),
        (CHANGE, b'{"educator_id": "edu-1"}', "missing_role"),
        (CHANGE, b'{"educator_id": "edu-1", "role": "dean"}', "unknown_role"),
        (CHANGE, b'{"educator_id": "edu-2", "role": "master_teacher"}', "educator_not_found"),
        # an educator of another institution is "not found" too: ids are never confirmed across institutions
        ("iioe.commands.num.change_role", b'{"educator_id": "edu-1", "role": "master_teacher"}', "educator_not_found"),
        (CHANGE, b" " * (MAX_EVENT_BYTES + 1), "payload_too_large"),
    ],
)
async def test_change_role_rejections_are_error_replies(subject: str, body: bytes, code: str) -> None:
    uow = FakeUnitOfWork()
    registrations = await registered(uow)
    staged = len(uow.events)
    reply = json.loads(await on_change_role(registrations, subject, body))
    assert list(reply) == ["error"] and reply["error"]["code"] == code and reply["error"]["message"]
    assert len(uow.events) == staged and uow.educators["edu-1"].role == "educator"


async def test_both_commands_share_one_concurrency_bound() -> None:
    uow = GatedUnitOfWork()
    nc = FakeNats()
    responder = CommandResponder(registrations_on(uow), queue="q", max_in_flight=2)
    await responder.start(nc)  # type: ignore[arg-type]
    register_sub, change_sub = nc.subscriptions

    async def deliver() -> None:
        await register_sub.cb(nc.request(SUBJECT, BODY, reply="_INBOX.r"))
        for n in range(2):
            body = json.dumps({"educator_id": "edu-1", "role": "master_teacher"}).encode()
            await change_sub.cb(nc.request(CHANGE, body, reply=f"_INBOX.c{n}"))

    reader = asyncio.create_task(deliver())
    await until(lambda: uow.open == 2, "two requests in flight")
    assert not reader.done()  # the third waits, whichever command it is
    uow.gate.set()
    await asyncio.wait_for(reader, 5)
    await until(lambda: len(nc.published) == 3, "three replies")
    assert uow.most_open == 2
    await responder.stop()
