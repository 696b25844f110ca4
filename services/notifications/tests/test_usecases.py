"""The notification rules, through the use cases on an in-memory unit of work: no NATS, no PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from itertools import product

import pytest

from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    EDUCATOR_REGISTERED,
    CertificateIssued,
    EducatorRegistered,
)
from services.notifications.domain import (
    TRANSITIONS,
    Contact,
    IllegalTransition,
    Notification,
    NotificationStatus,
    RetrySchedule,
    check_transition,
)
from services.notifications.ports import DeliveryError
from services.notifications.sending import MailDelivery, WebhookDelivery
from services.notifications.tests.fakes import (
    FakeComposer,
    FakeDeadLetters,
    FakeDns,
    FakeMailSender,
    FakePoster,
    FakeUnitOfWork,
    target_policy,
)
from services.notifications.usecases import ContactReceived, EventToNotify, NotificationUseCases, RegisterWebhook

S = NotificationStatus
REGISTRY = "urn:iioe:service:registration"
CONTACT_WAIT = 3600.0
LEASE = 60.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PUBLIC = ["93.184.216.34"]


class CeilingRandom(random.Random):
    """Always draws the top of the jitter range, so backoff delays are exact."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Platform:
    """The use cases wired to fakes, as `main.create_app` wires them to PostgreSQL, SMTP and HTTP."""

    def __init__(self, *failures: DeliveryError, max_attempts: int = 5, statuses: tuple[int, ...] = (204,)) -> None:
        self.uow = FakeUnitOfWork()
        self.clock = self.uow.clock
        self.sender = FakeMailSender(*failures)
        self.composer = FakeComposer()
        schedule = RetrySchedule(base_seconds=1.0, cap_seconds=4.0, max_attempts=max_attempts, rng=CeilingRandom())
        self.mail = MailDelivery(
            self.uow, self.sender, self.composer, schedule, mail_from="noreply@iioe.example", lease_seconds=LEASE
        )
        self.poster = FakePoster(*statuses)
        self.dead_letters = FakeDeadLetters()
        self.dns = FakeDns(default=PUBLIC)
        self.targets = target_policy(self.dns)
        self.usecases = NotificationUseCases(
            self.uow,
            certification_url="https://cert.example",
            contact_wait_seconds=CONTACT_WAIT,
            targets=self.targets,
        )
        self.webhooks = WebhookDelivery(
            self.uow, self.poster, self.dead_letters, schedule, lease_seconds=LEASE, targets=self.targets
        )

    async def contact(self, educator_id: str, language: str = "en", email: str | None = None, at: datetime = T0) -> int:
        contact = Contact(educator_id, "must", f"Name {educator_id}", email or f"{educator_id}@must.edu.mn", language)
        return await self.usecases.apply_contact(ContactReceived(contact, at))

    def status(self, notification_id: str) -> NotificationStatus:
        return self.uow.notification(notification_id).status


def registered(educator_id: str, *, event_id: str | None = None, source: str = REGISTRY) -> EventToNotify:
    data = EducatorRegistered(
        educator_id=educator_id, institution="must", language="en", role="educator", registered_at=T0
    )
    return EventToNotify(source, event_id or str(uuid.uuid4()), EDUCATOR_REGISTERED.type, "subj", b"{}", data)


def issued(educator_id: str, institution: str = "must") -> EventToNotify:
    data = CertificateIssued(
        certificate_id=f"cert-{educator_id}",
        educator_id=educator_id,
        institution=institution,
        programme_id="ai-in-higher-education",
        course_ids=["genai-fundamentals"],
        credits=3,
        issued_at=T0,
        credential="a.b.c",
    )
    return EventToNotify(REGISTRY, str(uuid.uuid4()), CERTIFICATE_ISSUED.type, "subj", b'{"x": 1}', data)


# -- the status machine -----------------------------------------------------------------------

LEGAL = [(a, b) for a, targets in TRANSITIONS.items() for b in targets]
ILLEGAL = [(a, b) for a, b in product(S, S) if b not in TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "target"), LEGAL)
def test_allowed_transitions_pass(current: NotificationStatus, target: NotificationStatus) -> None:
    check_transition("ntf-1", current, target)


@pytest.mark.parametrize(("current", "target"), ILLEGAL)
def test_any_other_transition_is_a_clear_error(current: NotificationStatus, target: NotificationStatus) -> None:
    with pytest.raises(IllegalTransition, match=f"ntf-1: {current} → {target} is not allowed") as info:
        check_transition("ntf-1", current, target)
    assert (info.value.current, info.value.target) == (current, target)


def test_the_machine_has_the_documented_shape() -> None:
    assert ("awaiting_contact", "pending") in LEGAL and ("awaiting_contact", "expired") in LEGAL
    assert {b for a, b in LEGAL if a is S.SENDING} == {S.SENT, S.PENDING, S.FAILED, S.SENDING, S.EXPIRED}
    assert {b for a, b in LEGAL if a is S.HELD} == {S.PENDING, S.AWAITING_CONTACT, S.EXPIRED}
    assert {b for a, b in LEGAL if a is S.PENDING} == {S.SENDING, S.EXPIRED}  # expired: the educator was erased
    assert all(not TRANSITIONS[final] for final in (S.SENT, S.FAILED, S.EXPIRED))
    assert len(LEGAL) + len(ILLEGAL) == len(S) ** 2


def test_entity_refuses_to_send_what_waits_for_a_contact_or_was_sent() -> None:
    waiting = Notification.for_event(
        source=REGISTRY,
        event_id="e1",
        event_type=EDUCATOR_REGISTERED.type,
        educator_id="edu-1",
        context={},
        contact=None,
    )
    assert waiting.status is S.AWAITING_CONTACT and waiting.kind == "welcome"
    with pytest.raises(IllegalTransition, match="awaiting_contact → sending"):
        waiting.start_sending()
    sent = waiting.contact_arrived(Contact("edu-1", "must", "A", "a@x.mn", "mn")).start_sending().sent("a@x.mn")
    assert (sent.status, sent.attempts, sent.recipient, sent.language) == (S.SENT, 1, "a@x.mn", "mn")
    for again in (sent.start_sending, lambda: sent.retry_later("x", 1.0), sent.expire):
        with pytest.raises(IllegalTransition, match=r"sent → \w+ is not allowed \(from sent: nothing \(final\)\)"):
            again()


# -- contacts: before, after, never ----------------------------------------------------------


async def test_known_contact_sends_one_mail_at_once() -> None:
    p = Platform()
    await p.contact("edu-1", "ru")
    recorded = await p.usecases.record_event(registered("edu-1"))
    assert recorded.queued and not recorded.awaiting_contact
    assert p.status(recorded.notification_id) is S.PENDING

    assert await p.mail.send_due() == 1
    [mail] = p.sender.to("edu-1@must.edu.mn")
    assert mail["Subject"] == "welcome (ru)"
    assert p.status(recorded.notification_id) is S.SENT and p.mail.sent == 1
    assert await p.mail.send_due() == 0


async def test_event_before_contact_waits_then_the_contact_releases_it() -> None:
    p = Platform()
    recorded = await p.usecases.record_event(registered("edu-2"))
    assert recorded.awaiting_contact and p.status(recorded.notification_id) is S.AWAITING_CONTACT
    assert await p.mail.send_due() == 0  # nobody to send to yet

    assert await p.contact("edu-2", "mn") == 1
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.recipient, n.language) == (S.PENDING, "edu-2@must.edu.mn", "mn")
    assert await p.mail.send_due() == 1
    assert p.status(recorded.notification_id) is S.SENT and p.composer.languages == ["mn"]
    assert await p.contact("edu-2", "mn") == 0  # a repeated contact releases nothing twice


async def test_contact_that_never_arrives_expires_after_the_wait() -> None:
    p = Platform()
    recorded = await p.usecases.record_event(registered("edu-3"))
    p.clock.advance(CONTACT_WAIT - 1)
    assert await p.usecases.expire_overdue(p.clock.now) == 0
    assert p.status(recorded.notification_id) is S.AWAITING_CONTACT

    p.clock.advance(2)
    assert await p.usecases.expire_overdue(p.clock.now) == 1
    n = p.uow.notification(recorded.notification_id)
    assert n.status is S.EXPIRED and n.last_error == "no contact details received"
    assert await p.contact("edu-3") == 0  # too late: an expired notification stays expired
    assert await p.mail.send_due() == 0 and p.sender.sent == []
    assert await p.usecases.expire_overdue(p.clock.now) == 0


async def test_an_older_contact_arriving_late_does_not_overwrite_the_newer_one() -> None:
    p = Platform()
    await p.contact("edu-4", "en", "new@must.edu.mn", at=datetime(2026, 2, 1, tzinfo=UTC))
    await p.contact("edu-4", "ru", "old@must.edu.mn", at=datetime(2026, 1, 1, tzinfo=UTC))
    await p.usecases.record_event(registered("edu-4"))
    await p.mail.send_due()
    assert [m["To"] for m in p.sender.sent] == ["new@must.edu.mn"] and p.composer.languages == ["en"]


@pytest.mark.parametrize(("given", "chosen"), [("mn", "mn"), ("ru-RU", "ru"), ("EN", "en"), ("de", "en"), ("", "en")])
async def test_mail_is_written_in_the_educators_language_or_english(given: str, chosen: str) -> None:
    p = Platform()
    await p.contact("edu-5", given)
    await p.usecases.record_event(registered("edu-5"))
    await p.mail.send_due()
    assert p.composer.languages == [chosen]


# -- never twice ------------------------------------------------------------------------------


async def test_duplicate_events_give_one_notification_and_one_mail() -> None:
    p = Platform()
    await p.contact("edu-6")
    event = registered("edu-6", event_id="evt-dup")
    first = await p.usecases.record_event(event)
    again = [await p.usecases.record_event(event) for _ in range(3)]
    assert first.queued and not any(r.queued for r in again)
    assert len(p.uow.state.notifications) == 1

    assert await p.mail.send_due() == 1
    await p.usecases.record_event(event)  # a replay after sending
    assert await p.mail.send_due() == 0
    assert len(p.sender.sent) == 1 and p.uow.notification(first.notification_id).attempts == 1


async def test_the_same_event_id_from_another_source_is_another_event() -> None:
    p = Platform()
    a = await p.usecases.record_event(registered("edu-7", event_id="evt-1"))
    b = await p.usecases.record_event(registered("edu-7", event_id="evt-1", source="urn:iioe:partner:x"))
    assert a.queued and b.queued and a.notification_id != b.notification_id


async def test_a_crashed_worker_lease_is_taken_over_once_and_its_late_finish_is_refused() -> None:
    p = Platform()
    await p.contact("edu-8")
    recorded = await p.usecases.record_event(registered("edu-8"))
    async with p.uow.transaction() as repo:  # a worker claims the row, then its process dies
        [lost] = await repo.mail.claim(10, LEASE)
    assert await p.mail.send_due() == 0  # the lease still holds
    p.clock.advance(LEASE + 1)
    assert await p.mail.send_due() == 1
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts) == (S.SENT, 2) and len(p.sender.sent) == 1
    async with p.uow.transaction() as repo:
        assert not await repo.mail.finish(lost, lost.notification.sent("x@y.mn"))
    assert p.uow.notification(recorded.notification_id).recipient == "edu-8@must.edu.mn"


# -- retries ----------------------------------------------------------------------------------


async def test_transient_failures_back_off_up_to_the_cap_then_fail_after_max_attempts() -> None:
    busy = [DeliveryError("451 try later", permanent=False) for _ in range(5)]
    p = Platform(*busy, max_attempts=5)
    await p.contact("edu-9")
    recorded = await p.usecases.record_event(registered("edu-9"))
    delays = []
    for attempt in range(1, 5):
        assert await p.mail.send_due() == 1
        n = p.uow.notification(recorded.notification_id)
        assert (n.status, n.attempts, n.last_error) == (S.PENDING, attempt, "451 try later")
        assert n.retry_after_seconds is not None
        delays.append(n.retry_after_seconds)
        p.clock.advance(n.retry_after_seconds - 0.5)
        assert await p.mail.send_due() == 0  # not due before its delay
        p.clock.advance(0.5)
    assert delays == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at 4 s
    assert await p.mail.send_due() == 1
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts) == (S.FAILED, 5) and p.sender.sent == []
    p.clock.advance(3600)
    assert await p.mail.send_due() == 0


async def test_a_transient_failure_then_success_sends_once() -> None:
    p = Platform(DeliveryError("connection refused", permanent=False))
    await p.contact("edu-10")
    recorded = await p.usecases.record_event(registered("edu-10"))
    await p.mail.send_due()
    p.clock.advance(1)
    await p.mail.send_due()
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts, n.last_error) == (S.SENT, 2, None) and len(p.sender.sent) == 1


async def test_a_permanent_rejection_fails_at_once() -> None:
    p = Platform(DeliveryError("550 no such user", permanent=True))
    await p.contact("edu-11")
    recorded = await p.usecases.record_event(registered("edu-11"))
    await p.mail.send_due()
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts, n.last_error) == (S.FAILED, 1, "550 no such user")


async def test_an_unrenderable_message_fails_without_retrying() -> None:
    p = Platform()
    p.composer.broken = frozenset({"certificate_issued"})
    await p.contact("edu-12")
    recorded = await p.usecases.record_event(issued("edu-12"))
    await p.mail.send_due()
    n = p.uow.notification(recorded.notification_id)
    assert n.status is S.FAILED and n.last_error is not None and n.last_error.startswith("cannot render")


async def test_certificate_facts_are_recorded_for_the_template() -> None:
    p = Platform()
    recorded = await p.usecases.record_event(issued("edu-13"))
    context = p.uow.notification(recorded.notification_id).context
    assert context["verify_url"] == "https://cert.example/verify/cert-edu-13"
    assert context["credits"] == 3 and context["programme_id"] == "ai-in-higher-education"
    assert "full_name" not in context and "email" not in context  # personal data is read at send time


# -- partner webhooks -------------------------------------------------------------------------


async def hook(p: Platform, webhook_id: str, institution: str, *types: str) -> None:
    await p.usecases.register_webhook(
        RegisterWebhook(webhook_id, f"https://{webhook_id}.example/hook", institution, list(types), "whsec_x")
    )


async def test_matching_webhooks_get_one_delivery_each_and_only_once() -> None:
    p = Platform()
    await hook(p, "wh-must", "must", CERTIFICATE_ISSUED.type)
    await hook(p, "wh-all", "*", CERTIFICATE_ISSUED.type, CERTIFICATE_REVOKED.type)
    await hook(p, "wh-other", "num", CERTIFICATE_ISSUED.type)
    await hook(p, "wh-revoked", "must", CERTIFICATE_REVOKED.type)
    event = issued("edu-14")
    assert (await p.usecases.record_event(event)).webhooks == 2
    await p.usecases.record_event(event)
    assert sorted(r.item.webhook_id for r in p.uow.state.deliveries.values()) == ["wh-all", "wh-must"]

    while await p.webhooks.deliver_next():
        pass
    assert sorted(url for url, _ in p.poster.calls) == ["https://wh-all.example/hook", "https://wh-must.example/hook"]
    assert {r.status for r in p.uow.state.deliveries.values()} == {"delivered"} and p.webhooks.delivered == 2


async def test_a_failing_webhook_retries_then_is_dead_lettered_once_and_can_be_redriven() -> None:
    p = Platform(max_attempts=3, statuses=(500,))
    await hook(p, "wh-fail", "must", CERTIFICATE_ISSUED.type)
    await p.usecases.record_event(issued("edu-15"))
    [delivery_id] = p.uow.state.deliveries
    for _ in range(3):
        assert await p.webhooks.deliver_next() == 1
        p.clock.advance(4)
    row = p.uow.delivery(delivery_id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "HTTP 500")
    assert p.dead_letters.letters == [(delivery_id, "HTTP 500")] and p.webhooks.dead == 1
    assert await p.webhooks.deliver_next() == 0

    assert await p.usecases.redrive_delivery(delivery_id)
    assert not await p.usecases.redrive_delivery(delivery_id)  # only a dead one
    assert await p.webhooks.deliver_next() == 1 and p.uow.delivery(delivery_id).attempts == 1


async def test_deleting_a_webhook_cancels_what_was_queued_for_it() -> None:
    p = Platform()
    await hook(p, "wh-gone", "must", CERTIFICATE_ISSUED.type)
    await p.usecases.record_event(issued("edu-16"))
    assert await p.usecases.delete_webhook("wh-gone")
    assert not await p.usecases.delete_webhook("wh-gone")
    assert {r.status for r in p.uow.state.deliveries.values()} == {"cancelled"}
    assert await p.webhooks.deliver_next() == 0 and p.poster.calls == []
    assert (await p.usecases.record_event(issued("edu-17"))).webhooks == 0


async def test_a_failed_transaction_leaves_nothing_behind() -> None:
    p = Platform()
    await hook(p, "wh-1", "must", CERTIFICATE_ISSUED.type)
    event = issued("edu-18")
    with pytest.raises(RuntimeError):
        async with p.uow.transaction() as repo:
            await repo.inbox.claim("notifications-events", f"{event.source} {event.event_id}")
            raise RuntimeError("database connection lost")
    recorded = await p.usecases.record_event(event)  # the redelivered event is handled in full
    assert recorded.queued and recorded.webhooks == 1
