"""Notifications end to end: real NATS, PostgreSQL, an aiosmtpd relay and an HTTP partner endpoint.

The event streams are shared by the whole test session, so every test uses its own institution
code, educator ids and addresses, and asserts only on those.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.envelope import event_headers, make_event
from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    EDUCATOR_CONTACT,
    EDUCATOR_REGISTERED,
    CertificateIssued,
    CertificateRevoked,
    EducatorContact,
    EducatorRegistered,
    EventSpec,
)
from iioe.subjects import DLQ_STREAM, dlq_subject
from services.notifications.main import create_app
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.tests.fakes import Receiver, SmtpCapture, http_receiver, smtp_server
from tests.support.helpers import Infra, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration

TOKEN = "operator-token-for-tests"
BACKLOG_TIMEOUT = 180.0
"""Generous: a new service first works through every earlier test's events on the shared streams."""
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpCapture, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with http_receiver(slow_seconds=30.0) as running:
        yield running


def settings_for(infra: Any, database_url: str, ref: str, smtp_port: int | None, **extra: Any) -> NotificationsSettings:
    values: dict[str, Any] = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "consumer_prefix": f"{ref}-",
        "api_token": TOKEN,
        "mail_poll_seconds": 0.1,
        "webhook_poll_seconds": 0.05,
        "smtp_timeout_seconds": 5.0,
        "send_lease_seconds": 10.0,
        "retry_backoff_seconds": (0.2,),
        "ack_wait_seconds": 5.0,
        "webhook_allow": "127.0.0.1",  # the local partner receiver (private targets are refused otherwise)
    }
    if smtp_port is not None:
        values.update(smtp_host="127.0.0.1", smtp_port=smtp_port, smtp_starttls=False)
    values.update(extra)
    return NotificationsSettings(**values)


async def publish(
    nc: NATS,
    spec: EventSpec,
    data: EducatorContact | EducatorRegistered | CertificateIssued | CertificateRevoked,
    *,
    event_id: str | None = None,
    msg_id: str | None = None,
) -> str:
    """Publish a real CloudEvent on its contract subject, as a producer service would."""
    source = "urn:iioe:service:registration" if spec.name.startswith("educator") else "urn:iioe:service:certification"
    event = make_event(data, event_type=spec.type, source=source, subject=data.educator_id, event_id=event_id)
    headers = event_headers(event)
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    await nc.jetstream().publish(spec.subject(data.institution), event.to_json_bytes(), headers=headers)
    return event.id


async def register(nc: NATS, inst: str, educator_id: str, email_address: str, language: str, name: str) -> str:
    await publish(nc, EDUCATOR_CONTACT, contact(inst, educator_id, email_address, language, name))
    return await publish(nc, EDUCATOR_REGISTERED, registered(inst, educator_id, language))


def contact(inst: str, educator_id: str, email_address: str, language: str, name: str) -> EducatorContact:
    return EducatorContact(
        educator_id=educator_id, institution=inst, full_name=name, email=email_address, language=language
    )


def registered(inst: str, educator_id: str, language: str) -> EducatorRegistered:
    return EducatorRegistered(
        educator_id=educator_id, institution=inst, language=language, role="educator", registered_at=datetime.now(UTC)
    )


def issued(inst: str, educator_id: str, certificate_id: str) -> CertificateIssued:
    return CertificateIssued(
        certificate_id=certificate_id,
        educator_id=educator_id,
        institution=inst,
        programme_id="ai-in-higher-education",
        course_ids=["genai-fundamentals", "teaching-with-ai", "future-classroom"],
        credits=3,
        issued_at=datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
        credential="eyJhbGciOiJFZERTQSJ9.e30.c2ln",
    )


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


async def mails_to(smtp: SmtpCapture, address: str, count: int = 1) -> list[EmailMessage]:
    async def arrived() -> list[EmailMessage]:
        found = smtp.to(address)
        return found if len(found) >= count else []

    return await eventually(arrived, timeout=BACKLOG_TIMEOUT, what=f"{count} mail(s) to {address}")


async def notifications(http: httpx.AsyncClient, educator_id: str) -> list[dict[str, Any]]:
    reply = await http.get("/v1/notifications", params={"educator_id": educator_id}, headers=AUTH)
    assert reply.status_code == 200, reply.text
    rows: list[dict[str, Any]] = reply.json()
    return rows


async def test_welcome_mail_is_written_in_each_educators_language(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int]
) -> None:
    capture, port = smtp
    inst = f"i-{ref}"
    people = {"mn": "Батын Сарнай", "en": "Dorj Bat", "ru": "Анна Петрова"}
    async with running_app(create_app(settings_for(infra, database_url, ref, port))):
        for language, name in people.items():
            await register(nc, inst, f"edu-{ref}-{language}", f"{language}.{ref}@example.mn", language, name)
        renderer = Renderer()
        for language, name in people.items():
            [mail] = await mails_to(capture, f"{language}.{ref}@example.mn")
            expected = renderer.render("welcome", language, {"full_name": name, "institution": inst})
            assert mail["Subject"] == expected.subject
            assert mail["Content-Language"] == language
            assert name in text_of(mail)
        subjects = {lang: capture.to(f"{lang}.{ref}@example.mn")[0]["Subject"] for lang in people}
        assert len(set(subjects.values())) == 3  # three different languages, not three English copies
        assert any("\u0400" <= ch <= "\u04ff" for ch in subjects["mn"] + subjects["ru"])


async def test_certificate_mail_has_programme_credits_and_a_working_verification_link(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int], receiver: Receiver
) -> None:
    capture, port = smtp
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"cert.{ref}@example.mn"
    certificate_id = f"cert-{ref}"
    settings = settings_for(infra, database_url, ref, port, certification_url=receiver.base_url)
    async with running_app(create_app(settings)) as http:
        await register(nc, inst, educator_id, address, "en", "Dorj Bat")
        await publish(nc, CERTIFICATE_ISSUED, issued(inst, educator_id, certificate_id))
        mails = await mails_to(capture, address, 2)
        [cert] = [m for m in mails if "certificate" in m["Subject"].lower()]
        body = text_of(cert)
        assert "AI in Higher Education" in cert["Subject"]  # the catalogue's display name, not the id
        assert "ECTS credits: 3" in body and certificate_id in body
        link = f"{receiver.base_url}/verify/{certificate_id}"
        assert link in body
        async with httpx.AsyncClient() as client:
            answer = await client.get(link)
        assert answer.status_code == 200 and answer.json()["certificate_id"] == certificate_id

        await publish(
            nc,
            CERTIFICATE_REVOKED,
            CertificateRevoked(
                certificate_id=certificate_id,
                educator_id=educator_id,
                institution=inst,
                reason="Course results were withdrawn by the university",
                revoked_at=datetime.now(UTC),
            ),
        )
        mails = await mails_to(capture, address, 3)
        [revoked] = [m for m in mails if "revoked" in m["Subject"]]
        assert "Course results were withdrawn by the university" in text_of(revoked)
        rows = await notifications(http, educator_id)
        assert sorted(r["kind"] for r in rows) == ["certificate_issued", "certificate_revoked", "welcome"]
        assert all(r["status"] == "sent" and r["attempts"] == 1 for r in rows)
        assert all(r["recipient"] == "c***@example.mn" for r in rows)  # masked


async def test_duplicate_and_redelivered_events_send_exactly_one_mail(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int]
) -> None:
    capture, port = smtp
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"dup.{ref}@example.mn"
    event_id = f"evt-{ref}"
    async with running_app(create_app(settings_for(infra, database_url, ref, port))) as http:
        await publish(nc, EDUCATOR_CONTACT, contact(inst, educator_id, address, "ru", "Анна Петрова"))
        for copy in range(3):  # same CloudEvent id, different Nats-Msg-Id: JetStream keeps all three
            await publish(
                nc,
                EDUCATOR_REGISTERED,
                registered(inst, educator_id, "ru"),
                event_id=event_id,
                msg_id=f"{event_id}-{copy}",
            )
        await mails_to(capture, address)

        async def all_sent() -> bool:
            rows = await notifications(http, educator_id)
            return len(rows) == 1 and rows[0]["status"] == "sent"

        await eventually(all_sent, timeout=BACKLOG_TIMEOUT, what="the notification marked sent")
    # a restart with a fresh durable consumer re-reads the whole stream: every event is redelivered
    async with running_app(create_app(settings_for(infra, database_url, f"{ref}-again", port))) as http:
        await register(nc, inst, f"edu-{ref}-marker", f"marker.{ref}@example.mn", "en", "Marker")
        await mails_to(capture, f"marker.{ref}@example.mn")  # the replay has reached past our events
        rows = await notifications(http, educator_id)
        assert [(r["status"], r["attempts"]) for r in rows] == [("sent", 1)]
    assert len(capture.to(address)) == 1


async def test_registration_before_contact_waits_and_then_sends(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int]
) -> None:
    capture, port = smtp
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"late.{ref}@example.mn"
    async with running_app(create_app(settings_for(infra, database_url, ref, port))) as http:
        await publish(nc, EDUCATOR_REGISTERED, registered(inst, educator_id, "mn"))

        async def waiting() -> bool:
            rows = await notifications(http, educator_id)
            return [r["status"] for r in rows] == ["awaiting_contact"]

        await eventually(waiting, timeout=BACKLOG_TIMEOUT, what="a notification waiting for the contact")
        await publish(nc, EDUCATOR_CONTACT, contact(inst, educator_id, address, "mn", "Батын Сарнай"))
        [mail] = await mails_to(capture, address)
        assert mail["Content-Language"] == "mn"
        assert "Батын Сарнай" in text_of(mail)


async def test_without_smtp_mail_lands_in_the_mailbox_folder(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"box.{ref}@example.mn"
    settings = settings_for(infra, database_url, ref, None, IIOE_DATA_DIR=tmp_path)
    async with running_app(create_app(settings)) as http:
        await register(nc, inst, educator_id, address, "en", "Dorj Bat")

        async def sent() -> list[dict[str, Any]]:
            return [r for r in await notifications(http, educator_id) if r["status"] == "sent"]

        [row] = await eventually(sent, timeout=BACKLOG_TIMEOUT, what="the welcome notification sent")
    eml = tmp_path / "mailbox" / f"{row['id']}.eml"
    parsed = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == address and "Dorj Bat" in text_of(parsed)


async def test_operator_routes_require_the_token(infra: Infra, database_url: str, ref: str) -> None:
    async with running_app(create_app(settings_for(infra, database_url, ref, None))) as http:
        for method, path in [
            ("GET", "/v1/webhooks"),
            ("POST", "/v1/webhooks"),
            ("GET", "/v1/webhooks/deliveries"),
            ("GET", "/v1/notifications"),
        ]:
            assert (await http.request(method, path)).status_code == 401
            wrong = await http.request(method, path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        bad = await http.post("/v1/webhooks", json={"url": "ftp://x", "event_types": ["nope"]}, headers=AUTH)
        assert bad.status_code == 422
        health = await http.get("/healthz")
        assert health.status_code == 200, health.text


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent check, as a partner would write it: HMAC-SHA256 over `{id}.{ts}.{body}`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(sig == f"v1,{expected}" for sig in headers["webhook-signature"].split())


async def test_webhook_delivery_is_signed_and_verifiable(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int], receiver: Receiver
) -> None:
    _, port = smtp
    inst, educator_id = f"i-{ref}", f"edu-{ref}"
    async with running_app(create_app(settings_for(infra, database_url, ref, port))) as http:
        created = await http.post(
            "/v1/webhooks",
            json={"url": f"{receiver.base_url}/hooks/ok", "institution": inst, "event_types": ["certificate_issued"]},
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        webhook = created.json()
        assert webhook["secret"].startswith("whsec_")
        assert webhook["event_types"] == [CERTIFICATE_ISSUED.type]
        listed = (await http.get("/v1/webhooks", headers=AUTH)).json()
        assert [w["id"] for w in listed] == [webhook["id"]] and "secret" not in listed[0]

        event_id = await publish(nc, CERTIFICATE_ISSUED, issued(inst, educator_id, f"cert-{ref}"))
        await publish(nc, EDUCATOR_REGISTERED, registered(inst, educator_id, "en"))  # not subscribed

        async def delivered() -> list[Any]:
            return receiver.to("/hooks/ok")

        [request] = await eventually(delivered, timeout=BACKLOG_TIMEOUT, what="the webhook request")
        assert verify_standard_webhook(webhook["secret"], request.headers, request.body)
        assert not verify_standard_webhook(webhook["secret"], request.headers, request.body + b" ")
        assert request.headers["content-type"] == "application/cloudevents+json"
        sent = json.loads(request.body)
        assert sent["id"] == event_id and sent["type"] == CERTIFICATE_ISSUED.type

        async def recorded() -> list[Any]:
            reply = await http.get("/v1/webhooks/deliveries", params={"event_id": event_id}, headers=AUTH)
            return [d for d in reply.json() if d["status"] == "delivered"]

        [delivery] = await eventually(recorded, what="the delivery recorded")
        assert delivery["attempts"] == 1 and delivery["id"] == request.headers["webhook-id"]
        assert (await http.delete(f"/v1/webhooks/{webhook['id']}", headers=AUTH)).status_code == 204
        assert (await http.delete(f"/v1/webhooks/{webhook['id']}", headers=AUTH)).status_code == 404
        assert len(receiver.to("/hooks/ok")) == 1


async def test_failing_webhook_is_retried_with_backoff_then_dead_lettered(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int], receiver: Receiver
) -> None:
    _, port = smtp
    inst, educator_id = f"i-{ref}", f"edu-{ref}"
    settings = settings_for(
        infra,
        database_url,
        ref,
        port,
        webhook_max_attempts=4,
        webhook_retry_base_seconds=0.05,
        webhook_retry_cap_seconds=0.4,
    )
    async with running_app(create_app(settings)) as http:
        created = await http.post(
            "/v1/webhooks",
            json={"url": f"{receiver.base_url}/hooks/fail", "institution": inst, "event_types": ["certificate_issued"]},
            headers=AUTH,
        )
        event_id = await publish(nc, CERTIFICATE_ISSUED, issued(inst, educator_id, f"cert-{ref}"))

        async def dead() -> list[Any]:
            reply = await http.get("/v1/webhooks/deliveries", params={"status": "dead"}, headers=AUTH)
            return [d for d in reply.json() if d["event_id"] == event_id]

        [delivery] = await eventually(dead, timeout=BACKLOG_TIMEOUT, what="the delivery dead-lettered")
        assert delivery["attempts"] == 4 and delivery["last_error"] == "HTTP 500 Internal Server Error"
        assert delivery["webhook_id"] == created.json()["id"]
        attempts = receiver.to("/hooks/fail")
        assert len(attempts) == 4 and {a.headers["webhook-id"] for a in attempts} == {delivery["id"]}

        async def dlq_entry() -> list[Any]:
            msgs = await stream_messages(nc, DLQ_STREAM, dlq_subject(f"{ref}-notifications-webhooks", "webhook_failed"))
            return [m for m in msgs if delivery["id"] in m.headers.get("Iioe-Dlq-Detail", "")]

        [letter] = await eventually(dlq_entry, what="the IIOE_DLQ entry")
        assert json.loads(letter.data)["id"] == event_id
        assert letter.headers["Iioe-Dlq-Reason"] == "webhook_failed" and letter.headers["Iioe-Dlq-Deliveries"] == "4"

        retried = await http.post(f"/v1/webhooks/deliveries/{delivery['id']}/retry", headers=AUTH)
        assert retried.status_code == 202
        await eventually(lambda: _more(receiver, 4), what="the operator re-drive to attempt again")


async def _more(receiver: Receiver, than: int) -> bool:
    return len(receiver.to("/hooks/fail")) > than


async def test_slow_webhook_endpoint_does_not_hold_up_email(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int], receiver: Receiver
) -> None:
    capture, port = smtp
    inst = f"i-{ref}"
    settings = settings_for(infra, database_url, ref, port, webhook_timeout_seconds=2.0, webhook_workers=1)
    async with running_app(create_app(settings)) as http:
        await http.post(
            "/v1/webhooks",
            json={
                "url": f"{receiver.base_url}/hooks/slow",
                "institution": inst,
                "event_types": ["educator_registered"],
            },
            headers=AUTH,
        )
        first = await register(nc, inst, f"edu-{ref}-1", f"one.{ref}@example.mn", "en", "One")

        async def in_flight() -> bool:
            return receiver.in_flight > 0

        await eventually(in_flight, timeout=BACKLOG_TIMEOUT, what="the slow endpoint to be busy")
        await register(nc, inst, f"edu-{ref}-2", f"two.{ref}@example.mn", "en", "Two")
        await mails_to(capture, f"one.{ref}@example.mn")
        await mails_to(capture, f"two.{ref}@example.mn")

        async def timed_out() -> list[Any]:
            reply = await http.get("/v1/webhooks/deliveries", params={"event_id": first}, headers=AUTH)
            return [d for d in reply.json() if (d["last_error"] or "").startswith("timeout")]

        [delivery] = await eventually(timed_out, what="the slow delivery to time out")
        assert delivery["status"] in {"pending", "sending"}
