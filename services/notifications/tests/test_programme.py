"""Contract v1.1 mails on the in-memory unit of work: certificate mail order, suspension, credit
transfer, training attendance and the master teachers' monthly digest (fake clock, no sleeps)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from iioe.events import (
    CERTIFICATE_REINSTATED,
    CERTIFICATE_REVOKED,
    CERTIFICATE_SUSPENDED,
    CREDIT_TRANSFER_DECIDED,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CreditTransferDecided,
)
from services.notifications.domain import (
    WEBHOOK_EVENT_TYPES,
    NotificationStatus,
    Session,
    attendance_notification_id,
    digest_notification_id,
    normalise_event_type,
    previous_month,
)
from services.notifications.ports import DeliveryError
from services.notifications.tests.test_usecases import CONTACT_WAIT, REGISTRY, T0, Platform, hook, issued
from services.notifications.usecases import Attended, EventToNotify

S = NotificationStatus
CERTIFICATION = "urn:iioe:service:certification"


def revoked(educator_id: str) -> EventToNotify:
    data = CertificateRevoked(
        certificate_id=f"cert-{educator_id}", educator_id=educator_id, institution="must", reason="fraud", revoked_at=T0
    )
    return EventToNotify(CERTIFICATION, str(uuid.uuid4()), CERTIFICATE_REVOKED.type, "subj", b"{}", data)


def suspended(educator_id: str) -> EventToNotify:
    data = CertificateSuspended(
        certificate_id=f"cert-{educator_id}", educator_id=educator_id, institution="must", at=T0
    )
    return EventToNotify(CERTIFICATION, str(uuid.uuid4()), CERTIFICATE_SUSPENDED.type, "subj", b"{}", data)


def reinstated(educator_id: str) -> EventToNotify:
    data = CertificateReinstated(
        certificate_id=f"cert-{educator_id}", educator_id=educator_id, institution="must", at=T0, reason="cleared"
    )
    return EventToNotify(CERTIFICATION, str(uuid.uuid4()), CERTIFICATE_REINSTATED.type, "subj", b"{}", data)


def decided(educator_id: str, decision: str = "accepted") -> EventToNotify:
    data = CreditTransferDecided(
        request_id=f"req-{educator_id}",
        educator_id=educator_id,
        institution="must",
        receiving_institution="num",
        decision=decision,
        credits=5,
        decided_at=T0,
    )
    return EventToNotify(REGISTRY, str(uuid.uuid4()), CREDIT_TRANSFER_DECIDED.type, "subj", b"{}", data)


def kinds_sent(p: Platform) -> list[str]:
    return [str(m["Subject"]).split(" (")[0] for m in p.sender.sent]


# -- ordering: never "revoked" before "issued" ------------------------------------------------


async def test_a_revocation_that_arrives_first_waits_for_the_issued_mail() -> None:
    p = Platform()
    await p.contact("edu-o1")
    revocation = await p.usecases.record_event(revoked("edu-o1"))
    assert p.status(revocation.notification_id) is S.HELD
    assert await p.mail.send_due() == 0 and p.sender.sent == []

    issued_mail = await p.usecases.record_event(issued("edu-o1"))
    assert p.status(issued_mail.notification_id) is S.PENDING
    assert await p.mail.send_due() == 1  # only the issued mail is due
    assert p.status(revocation.notification_id) is S.PENDING  # released by the issued mail's send
    assert await p.mail.send_due() == 1
    assert kinds_sent(p) == ["certificate_issued", "certificate_revoked"]


async def test_a_revocation_after_the_issued_mail_was_sent_goes_at_once() -> None:
    p = Platform()
    await p.contact("edu-o2")
    await p.usecases.record_event(issued("edu-o2"))
    await p.mail.send_due()
    revocation = await p.usecases.record_event(revoked("edu-o2"))
    assert p.status(revocation.notification_id) is S.PENDING


async def test_a_revocation_queued_while_the_issued_mail_is_unsent_still_waits() -> None:
    """Both recorded (no contact yet), then the contact arrives: the issued mail first, always."""
    p = Platform()
    issued_mail = await p.usecases.record_event(issued("edu-o3"))
    suspension = await p.usecases.record_event(suspended("edu-o3"))
    revocation = await p.usecases.record_event(revoked("edu-o3"))
    assert [p.status(n.notification_id) for n in (issued_mail, suspension, revocation)] == [
        S.AWAITING_CONTACT,
        S.HELD,
        S.HELD,
    ]
    assert await p.contact("edu-o3") == 1  # the contact releases the issued mail only
    assert p.status(revocation.notification_id) is S.HELD
    await p.mail.send_due()
    await p.mail.send_due()
    sent = kinds_sent(p)
    assert sent[0] == "certificate_issued" and sorted(sent[1:]) == ["certificate_revoked", "certificate_suspended"]


async def test_an_issued_mail_that_fails_for_good_releases_what_waited() -> None:
    p = Platform(DeliveryError("550 no such user", permanent=True))
    await p.contact("edu-o4")
    revocation = await p.usecases.record_event(revoked("edu-o4"))
    issued_mail = await p.usecases.record_event(issued("edu-o4"))
    await p.mail.send_due()
    assert p.status(issued_mail.notification_id) is S.FAILED
    assert p.status(revocation.notification_id) is S.PENDING


async def test_an_issued_mail_that_expires_releases_what_waited_to_wait_for_the_contact() -> None:
    p = Platform()
    await p.usecases.record_event(issued("edu-o5"))
    revocation = await p.usecases.record_event(revoked("edu-o5"))
    p.clock.advance(CONTACT_WAIT - 10)
    assert await p.usecases.expire_overdue(p.clock.now) == 0
    p.clock.advance(11)
    assert await p.usecases.expire_overdue(p.clock.now) >= 1
    assert p.status(revocation.notification_id) is S.AWAITING_CONTACT  # waits for the contact like any other
    assert p.sender.sent == []


async def test_a_revocation_whose_certificate_mail_never_comes_expires_after_the_wait() -> None:
    p = Platform()
    await p.contact("edu-o6")
    revocation = await p.usecases.record_event(revoked("edu-o6"))
    p.clock.advance(CONTACT_WAIT + 1)
    assert await p.usecases.expire_overdue(p.clock.now) == 1
    n = p.uow.notification(revocation.notification_id)
    assert n.status is S.EXPIRED and n.last_error == "the certificate's issued mail never came"


# -- suspension, reinstatement, credit transfer ------------------------------------------------


async def test_suspension_and_reinstatement_mail_the_educator_and_reach_webhooks() -> None:
    p = Platform()
    await p.contact("edu-p1", "ru")
    await hook(p, "wh-status", "must", CERTIFICATE_SUSPENDED.type, CERTIFICATE_REINSTATED.type)
    await p.usecases.record_event(issued("edu-p1"))
    await p.mail.send_due()
    assert (await p.usecases.record_event(suspended("edu-p1"))).webhooks == 1
    assert (await p.usecases.record_event(reinstated("edu-p1"))).webhooks == 1
    await p.mail.send_due()
    assert sorted(kinds_sent(p)) == ["certificate_issued", "certificate_reinstated", "certificate_suspended"]
    assert p.composer.languages == ["ru", "ru", "ru"]


async def test_a_credit_transfer_decision_is_mailed_in_the_educators_language_and_offered_to_webhooks() -> None:
    p = Platform()
    await p.contact("edu-p2", "mn")
    await hook(p, "wh-credits", "*", CREDIT_TRANSFER_DECIDED.type)
    recorded = await p.usecases.record_event(decided("edu-p2", "rejected"))
    assert recorded.webhooks == 1
    n = p.uow.notification(recorded.notification_id)
    assert n.kind == "credit_transfer_decided" and n.context["decision"] == "rejected"
    assert n.context["credits"] is None  # credits of a rejection are not granted
    await p.mail.send_due()
    assert kinds_sent(p) == ["credit_transfer_decided"] and p.composer.languages == ["mn"]


def test_partners_may_subscribe_to_the_new_types() -> None:
    for name in ("certificate_suspended", "certificate_reinstated", "credit_transfer_decided"):
        assert name in WEBHOOK_EVENT_TYPES and normalise_event_type(name) == WEBHOOK_EVENT_TYPES[name]


# -- training attendance ----------------------------------------------------------------------


def session(session_id: str, teacher: str = "mt-1", held_on: date = date(2026, 1, 10)) -> Session:
    return Session(session_id, "must", teacher, "Darkhan-Uul", "face_to_face", held_on, "mn")


def attended(session_id: str, educator_id: str, institution: str = "num") -> Attended:
    return Attended("urn:iioe:partner:lms", str(uuid.uuid4()), session_id, educator_id, institution)


async def test_an_attendance_after_its_session_mails_the_trainee_in_their_language() -> None:
    p = Platform()
    await p.contact("tr-1", "ru")
    assert await p.usecases.record_session(REGISTRY, "ev-s1", session("sess-a")) == 0
    assert await p.usecases.record_attendance(attended("sess-a", "tr-1"))
    n = p.uow.notification(attendance_notification_id("sess-a", "tr-1"))
    assert n.kind == "session_attended" and n.context["region"] == "Darkhan-Uul" and n.institution == "num"
    await p.mail.send_due()
    assert kinds_sent(p) == ["session_attended"] and p.composer.languages == ["ru"]


async def test_attendances_before_their_session_are_mailed_when_the_session_arrives() -> None:
    p = Platform()
    for trainee in ("tr-2", "tr-3"):
        await p.contact(trainee, "en")
        assert not await p.usecases.record_attendance(attended("sess-b", trainee))
    assert p.uow.state.notifications == {}
    assert await p.usecases.record_session(REGISTRY, "ev-s2", session("sess-b")) == 2
    assert await p.usecases.record_session(REGISTRY, "ev-s2", session("sess-b")) == 0  # redelivered
    assert await p.mail.send_due() == 2


async def test_the_same_attendance_reported_twice_mails_once() -> None:
    p = Platform()
    await p.contact("tr-4")
    await p.usecases.record_session(REGISTRY, "ev-s3", session("sess-c"))
    assert await p.usecases.record_attendance(attended("sess-c", "tr-4"))
    assert not await p.usecases.record_attendance(attended("sess-c", "tr-4"))  # another event id, same fact
    assert await p.mail.send_due() == 1 and await p.mail.send_due() == 0


# -- the monthly digest -----------------------------------------------------------------------


def test_a_digest_sent_now_reports_the_month_that_ended() -> None:
    assert previous_month(datetime(2026, 3, 1, 0, 5, tzinfo=UTC)) == ("2026-02", date(2026, 2, 1), date(2026, 2, 28))
    assert previous_month(datetime(2026, 1, 15, tzinfo=UTC)) == ("2025-12", date(2025, 12, 1), date(2025, 12, 31))


async def test_a_master_teacher_gets_at_most_one_digest_a_month() -> None:
    p = Platform()
    await p.contact("mt-1", "mn")
    await p.usecases.record_session(REGISTRY, "ev-d1", session("sess-d1", held_on=date(2026, 1, 10)))
    await p.usecases.record_session(REGISTRY, "ev-d2", session("sess-d2", held_on=date(2026, 2, 3)))
    for trainee, sess in (("tr-d1", "sess-d1"), ("tr-d2", "sess-d1"), ("tr-d3", "sess-d2")):
        await p.usecases.record_attendance(attended(sess, trainee))
    await p.usecases.record_completion("tr-d1", "genai-fundamentals")
    await p.usecases.record_completion("tr-d1", "teaching-with-ai")
    await p.usecases.record_event(issued("tr-d2"))

    p.clock.now = datetime(2026, 1, 20, tzinfo=UTC)
    assert await p.usecases.schedule_digests(p.clock.now) == 0  # December: no sessions yet
    p.clock.now = datetime(2026, 2, 1, 0, 1, tzinfo=UTC)
    assert await p.usecases.schedule_digests(p.clock.now) == 1
    p.clock.advance(3600)
    assert await p.usecases.schedule_digests(p.clock.now) == 0  # later the same month: nothing more
    january = p.uow.notification(digest_notification_id("mt-1", "2026-01"))
    assert january.kind == "monthly_digest" and january.status is S.PENDING
    assert {k: january.context[k] for k in ("month", "trainees", "new_trainees", "sessions")} == {
        "month": "2026-01",
        "trainees": 2,
        "new_trainees": 2,
        "sessions": 1,
    }
    assert (january.context["trainees_completing"], january.context["trainees_certified"]) == (1, 1)

    p.clock.now = datetime(2026, 3, 2, tzinfo=UTC)
    assert await p.usecases.schedule_digests(p.clock.now) == 1
    february = p.uow.notification(digest_notification_id("mt-1", "2026-02"))
    assert (february.context["trainees"], february.context["new_trainees"], february.context["sessions"]) == (3, 1, 1)
    assert await p.usecases.schedule_digests(p.clock.now + timedelta(days=5)) == 0
    digests = [r for r in p.uow.state.notifications.values() if r.item.kind == "monthly_digest"]
    assert len(digests) == 2


async def test_a_master_teacher_without_trainees_or_erased_gets_no_digest() -> None:
    p = Platform()
    await p.usecases.record_session(REGISTRY, "ev-d3", session("sess-d3", teacher="mt-lonely"))
    await p.usecases.record_session(REGISTRY, "ev-d4", session("sess-d4", teacher="mt-gone"))
    await p.usecases.record_attendance(attended("sess-d4", "tr-d4"))
    await p.usecases.erase_educator("mt-gone", T0)
    assert await p.usecases.schedule_digests(datetime(2026, 2, 1, tzinfo=UTC)) == 0
