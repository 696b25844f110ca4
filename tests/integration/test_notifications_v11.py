"""Notifications, contract v1.1, against real NATS and PostgreSQL: token scopes, webhook targets,
erasure, no addresses in logs, the order of certificate mails and training-attendance mails."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from nats.aio.client import Client as NATS

from iioe.envelope import event_headers, make_event
from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    EDUCATOR_CONTACT,
    EDUCATOR_ERASED,
    EDUCATOR_REGISTERED,
    TRAINEE_ATTENDED,
    TRAINING_SESSION_HELD,
    CertificateRevoked,
    EducatorErased,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe.runtime.tokens import TokenGrant, put_grant
from services.notifications.main import create_app
from services.notifications.tests.fakes import SmtpCapture, smtp_server
from tests.integration.test_notifications import (
    AUTH,
    BACKLOG_TIMEOUT,
    contact,
    issued,
    mails_to,
    notifications,
    publish,
    register,
    registered,
    settings_for,
    text_of,
)
from tests.support.helpers import Infra, eventually, running_app

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Any:
    with smtp_server() as server:
        yield server


async def grant(nc: NATS, token: str, **fields: Any) -> dict[str, str]:
    await put_grant(nc.jetstream(), token, TokenGrant(**fields))
    return {"Authorization": f"Bearer {token}"}


async def send(nc: NATS, spec: Any, data: Any, source: str = "urn:iioe:partner:lms") -> str:
    event = make_event(data, event_type=spec.type, source=source, subject=getattr(data, "educator_id", None))
    await nc.jetstream().publish(spec.subject(data.institution), event.to_json_bytes(), headers=event_headers(event))
    return event.id


async def test_tokens_reach_only_what_their_scope_and_institution_allow(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    inst, other = f"i-{ref}", f"o-{ref}"
    must = await grant(nc, f"inst-{ref}", kind="institution", actor=f"partner-{inst}", institution=inst)
    dlq_only = await grant(nc, f"dlq-{ref}", kind="operator", actor="dlq-bot", scopes=frozenset({"dlq"}))
    hooks = await grant(nc, f"hooks-{ref}", kind="operator", actor="hooks-bot", scopes=frozenset({"webhooks"}))
    async with running_app(create_app(settings_for(infra, database_url, ref, None))) as http:
        for headers in (must, dlq_only):
            for method, path in [("GET", "/v1/webhooks"), ("POST", "/v1/webhooks"), ("GET", "/v1/webhooks/deliveries")]:
                reply = await http.request(method, path, headers=headers)
                assert reply.status_code == 403 and reply.json()["error"]["code"] == "forbidden", (path, reply.text)
        assert (await http.get("/v1/webhooks", headers=hooks)).status_code == 200
        assert (await http.get("/v1/notifications")).status_code == 401

        await publish(nc, EDUCATOR_REGISTERED, registered(inst, f"edu-{ref}-1", "en"))
        await publish(nc, EDUCATOR_REGISTERED, registered(other, f"edu-{ref}-2", "en"))

        async def both() -> list[dict[str, Any]]:
            rows = (await http.get("/v1/notifications", headers=AUTH)).json()
            return [r for r in rows if r["educator_id"].startswith(f"edu-{ref}")] if len(rows) >= 2 else []

        everyone = await eventually(both, timeout=BACKLOG_TIMEOUT, what="both notifications stored")
        assert {r["institution"] for r in everyone} == {inst, other}
        mine = (await http.get("/v1/notifications", headers=must)).json()
        assert [r["educator_id"] for r in mine] == [f"edu-{ref}-1"]
        foreign = await http.get("/v1/notifications", params={"institution": other}, headers=must)
        assert foreign.status_code == 403


async def test_webhook_targets_on_private_or_platform_addresses_are_refused(
    infra: Infra, database_url: str, ref: str
) -> None:
    settings = settings_for(
        infra, database_url, ref, None, webhook_allow="127.0.0.1:9", certification_url="http://127.0.0.1:8002"
    )
    async with running_app(create_app(settings)) as http:
        for url in (
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/hook",
            "http://[::1]:8080/hook",
            "http://127.0.0.1:8002/v1/certificates/x",  # the certification service itself
            "http://localhost:9000/hook",
        ):
            reply = await http.post(
                "/v1/webhooks", json={"url": url, "event_types": ["certificate_issued"]}, headers=AUTH
            )
            assert reply.status_code == 422, (url, reply.text)
            assert reply.json()["error"]["code"] == "webhook_target_forbidden", url
        allowed = await http.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["certificate_issued"]}, headers=AUTH
        )
        assert allowed.status_code == 201, allowed.text
        assert (await http.get("/v1/webhooks", headers=AUTH)).json()[0]["url"] == "http://127.0.0.1:9/hook"


async def test_erasure_stops_waiting_mail_and_a_later_contact_is_not_stored(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    inst, educator_id = f"i-{ref}", f"edu-{ref}"
    app = create_app(settings_for(infra, database_url, ref, None, IIOE_DATA_DIR=tmp_path))
    async with running_app(app) as http:
        await publish(nc, EDUCATOR_REGISTERED, registered(inst, educator_id, "en"))

        async def waiting() -> bool:
            return [r["status"] for r in await notifications(http, educator_id)] == ["awaiting_contact"]

        await eventually(waiting, timeout=BACKLOG_TIMEOUT, what="the welcome mail waiting for the contact")
        await send(
            nc, EDUCATOR_ERASED, EducatorErased(educator_id=educator_id, institution=inst, erased_at=datetime.now(UTC))
        )

        async def expired() -> list[dict[str, Any]]:
            return [r for r in await notifications(http, educator_id) if r["status"] == "expired"]

        [row] = await eventually(expired, what="the waiting mail expired by the erasure")
        assert row["last_error"] == "educator erased" and row["recipient"] is None
        await publish(nc, EDUCATOR_CONTACT, contact(inst, educator_id, f"gone.{ref}@example.mn", "en", "Gone"))
        marker = f"marker-{ref}"
        await register(nc, inst, marker, f"m.{ref}@example.mn", "en", "Marker")  # handled after the contact

        async def marker_sent() -> bool:
            return [r["status"] for r in await notifications(http, marker)] == ["sent"]

        await eventually(marker_sent, what="a later registration mailed (so the erased contact was handled)")
        async with app.state.runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM contacts WHERE educator_id = $1", educator_id) == 0
        mailbox = tmp_path / "mailbox"
        assert not [p for p in mailbox.glob("*.eml") if "gone." in p.read_text(errors="replace")]
        [kept] = [p for p in mailbox.glob("*.eml") if f"m.{ref}@" in p.read_text(errors="replace")]

        await send(
            nc, EDUCATOR_ERASED, EducatorErased(educator_id=marker, institution=inst, erased_at=datetime.now(UTC))
        )

        async def forgotten() -> bool:
            return not kept.exists()

        await eventually(forgotten, what="the erased person's stored mail deleted")
        [row] = await notifications(http, marker)
        assert (row["status"], row["recipient"]) == ("sent", None)


async def test_a_registration_to_mail_flow_logs_no_address(
    infra: Infra,
    database_url: str,
    nc: NATS,
    ref: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    inst, educator_id = f"i-{ref}", f"edu-{ref}"
    caplog.set_level(logging.DEBUG)
    settings = settings_for(infra, database_url, ref, None, IIOE_DATA_DIR=tmp_path, LOG_LEVEL="DEBUG")
    with structlog.testing.capture_logs() as events:
        async with running_app(create_app(settings)) as http:
            await register(nc, inst, educator_id, f"dorj.bat.{ref}@must.edu.mn", "en", "Dorj Bat")

            async def sent() -> bool:
                return [r["status"] for r in await notifications(http, educator_id)] == ["sent"]

            await eventually(sent, timeout=BACKLOG_TIMEOUT, what="the welcome mail sent")
    printed = capsys.readouterr()
    captured = [repr(e) for e in events] + [r.getMessage() for r in caplog.records] + [printed.out, printed.err]
    assert any("notification sent" in text for text in captured), "no log output was captured"
    for text in captured:
        assert "@" not in text, text


async def test_a_revocation_published_before_its_certificate_is_mailed_after_it(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int]
) -> None:
    capture, port = smtp
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"order.{ref}@example.mn"
    async with running_app(create_app(settings_for(infra, database_url, ref, port))) as http:
        await publish(nc, EDUCATOR_CONTACT, contact(inst, educator_id, address, "en", "Order Test"))
        revocation = CertificateRevoked(
            certificate_id=f"cert-{ref}",
            educator_id=educator_id,
            institution=inst,
            reason="duplicate",
            revoked_at=datetime.now(UTC),
        )
        await publish(nc, CERTIFICATE_REVOKED, revocation)

        async def held() -> bool:
            return [r["status"] for r in await notifications(http, educator_id)] == ["held"]

        await eventually(held, timeout=BACKLOG_TIMEOUT, what="the revocation mail held")
        await publish(nc, CERTIFICATE_ISSUED, issued(inst, educator_id, f"cert-{ref}"))
        first, second = await mails_to(capture, address, count=2)
        assert "issued" in str(first["Subject"]) and "revoked" not in str(first["Subject"])
        assert "revoked" in str(second["Subject"]).lower() and f"cert-{ref}" in str(second["Subject"])


async def test_a_trainee_is_mailed_in_their_language_whichever_arrives_first(
    infra: Infra, database_url: str, nc: NATS, ref: str, smtp: tuple[SmtpCapture, int]
) -> None:
    capture, port = smtp
    inst, session_id = f"i-{ref}", f"sess-{ref}"
    async with running_app(create_app(settings_for(infra, database_url, ref, port))):
        await publish(nc, EDUCATOR_CONTACT, contact(inst, f"tr-{ref}-1", f"t1.{ref}@example.mn", "ru", "Анна"))
        await publish(nc, EDUCATOR_CONTACT, contact(inst, f"tr-{ref}-2", f"t2.{ref}@example.mn", "mn", "Сарнай"))
        await send(
            nc, TRAINEE_ATTENDED, TraineeAttended(session_id=session_id, institution=inst, educator_id=f"tr-{ref}-1")
        )
        held = TrainingSessionHeld(
            session_id=session_id,
            institution=inst,
            master_teacher_id=f"mt-{ref}",
            region="Darkhan-Uul",
            mode="hybrid",
            held_on=date(2026, 1, 10),
            language="mn",
        )
        await send(nc, TRAINING_SESSION_HELD, held)
        await send(
            nc, TRAINEE_ATTENDED, TraineeAttended(session_id=session_id, institution=inst, educator_id=f"tr-{ref}-2")
        )
        [russian] = await mails_to(capture, f"t1.{ref}@example.mn")
        [mongolian] = await mails_to(capture, f"t2.{ref}@example.mn")
        assert russian["Content-Language"] == "ru" and "Darkhan-Uul" in text_of(russian)
        assert mongolian["Content-Language"] == "mn" and "Сарнай" in text_of(mongolian)
