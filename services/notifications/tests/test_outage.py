"""A database outage after the network call: the outcome is recorded once the database answers, and nothing
is sent twice (chaos suite: `postgres-stopped-*`). On the in-memory unit of work, whose `down` flag refuses
every transaction with a connection error, and a fake clock that the recorder's backoff moves forward."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from iioe.events import CERTIFICATE_ISSUED
from services.notifications.domain import NotificationStatus, RetrySchedule
from services.notifications.mime import OutgoingMail
from services.notifications.ports import DeliveryError
from services.notifications.sending import MailDelivery, OutcomeRecorder, WebhookDelivery
from services.notifications.tests.fakes import FakeMailSender, FakeUnitOfWork
from services.notifications.tests.test_usecases import LEASE, Platform, hook, issued, registered

S = NotificationStatus


class Outage:
    """The recorder's sleep: moves the fake clock by each backoff delay; `during(n)` runs at the n-th pause
    and the database comes back at pause `until`."""

    def __init__(self, uow: FakeUnitOfWork, until: int, *, advance: float | None = None) -> None:
        self.uow = uow
        self.until = until
        self.advance = advance
        self.delays: list[float] = []
        self.during: dict[int, Callable[[], Awaitable[None]]] = {}

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.uow.clock.advance(self.advance if self.advance is not None else seconds)
        action = self.during.get(len(self.delays))
        if action is not None:
            await action()
        if len(self.delays) >= self.until:
            self.uow.down = False
        await asyncio.sleep(0)


class AcceptThenOutage(FakeMailSender):
    """The relay accepts the mail, then the database goes away before `sent` is written."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__()
        self.uow = uow

    async def send(self, msg: OutgoingMail) -> None:
        await super().send(msg)
        self.uow.down = True


class CountingObserver:
    def __init__(self) -> None:
        self.counts = {"mail_sent": 0, "mail_failed": 0, "webhook_sent": 0, "webhook_failed": 0}

    def mail_sent(self) -> None:
        self.counts["mail_sent"] += 1

    def mail_failed(self) -> None:
        self.counts["mail_failed"] += 1

    def webhook_sent(self) -> None:
        self.counts["webhook_sent"] += 1

    def webhook_failed(self) -> None:
        self.counts["webhook_failed"] += 1


def schedule() -> RetrySchedule:
    return RetrySchedule(base_seconds=1.0, cap_seconds=4.0, max_attempts=5)


def mail_worker(p: Platform, sender: FakeMailSender, outage: Outage, **kwargs: object) -> MailDelivery:
    return MailDelivery(
        p.uow,
        sender,
        p.composer,
        schedule(),
        mail_from="noreply@iioe.example",
        lease_seconds=LEASE,
        recorder=OutcomeRecorder(sleep=outage.sleep),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_a_mail_accepted_before_an_outage_is_marked_sent_when_the_database_answers() -> None:
    p = Platform()
    await p.contact("edu-1")
    recorded = await p.usecases.record_event(registered("edu-1"))
    outage = Outage(p.uow, until=6)
    sender = AcceptThenOutage(p.uow)
    worker = mail_worker(p, sender, outage)
    replica = MailDelivery(p.uow, sender, p.composer, schedule(), mail_from="x@iioe.example", lease_seconds=LEASE)

    async def replica_polls() -> None:  # another replica meets the outage too: it claims nothing
        with pytest.raises(ConnectionRefusedError):
            await replica.send_due()

    outage.during[3] = replica_polls
    assert await worker.send_due() == 1

    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts, n.recipient) == (S.SENT, 1, "edu-1@must.edu.mn")
    assert outage.delays == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]  # doubling, capped at 2 s
    assert p.uow.refused >= 7 and worker.recorder.retries == 6 and worker.recorder.waiting == 0
    assert worker.sent == 1
    p.clock.advance(LEASE * 10)
    assert await replica.send_due() == 0 and await worker.send_due() == 0
    assert len(sender.sent) == 1


async def test_an_outage_longer_than_the_lease_sends_nothing_twice_from_this_process() -> None:
    """Every worker of the process waits while an outcome is unrecorded, so the expired lease is never taken."""
    p = Platform()
    await hook(p, "wh-1", "must", CERTIFICATE_ISSUED.type)
    await p.usecases.record_event(issued("edu-2"))
    [delivery_id] = p.uow.state.deliveries
    outage = Outage(p.uow, until=5, advance=LEASE)  # far past the lease before the database is back
    webhooks = WebhookDelivery(
        p.uow,
        p.poster,
        p.dead_letters,
        schedule(),
        lease_seconds=LEASE,
        targets=p.targets,
        recorder=OutcomeRecorder(sleep=outage.sleep),
    )
    real_post = p.poster.post

    async def post_then_outage(*args: object) -> object:
        result = await real_post(*args)  # type: ignore[arg-type]
        p.uow.down = True
        return result

    p.poster.post = post_then_outage  # type: ignore[assignment,method-assign]
    second: list[asyncio.Task[int]] = []

    async def second_worker() -> None:
        second.append(asyncio.create_task(webhooks.deliver_next()))

    outage.during[1] = second_worker
    assert await webhooks.deliver_next() == 1
    assert await second[0] == 0  # it waited for the outcome, then found nothing due

    row = p.uow.delivery(delivery_id)
    assert (row.status, row.attempts) == ("delivered", 1) and len(p.poster.calls) == 1
    assert webhooks.delivered == 1 and webhooks.recorder.retries == 5


async def test_a_failed_send_is_recorded_through_an_outage_too() -> None:
    p = Platform()
    await p.contact("edu-3")
    recorded = await p.usecases.record_event(registered("edu-3"))
    outage = Outage(p.uow, until=2)

    class RefuseThenOutage(FakeMailSender):
        async def send(self, msg: OutgoingMail) -> None:
            p.uow.down = True
            raise DeliveryError("451 try later", permanent=False)

    await mail_worker(p, RefuseThenOutage(), outage).send_due()
    n = p.uow.notification(recorded.notification_id)
    assert (n.status, n.attempts, n.last_error) == (S.PENDING, 1, "451 try later")


async def test_a_logic_error_while_recording_is_not_retried() -> None:
    outage_sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        outage_sleeps.append(seconds)

    async def broken() -> bool:
        raise RuntimeError("a bug, not the world")

    with pytest.raises(RuntimeError):
        await OutcomeRecorder(sleep=sleep).write(broken, queue="mail", key="n-1")
    assert outage_sleeps == []


async def test_a_lock_timeout_while_recording_is_retried() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    calls = 0

    async def contended() -> bool:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise asyncpg.LockNotAvailableError("canceling statement due to lock timeout")
        return True

    assert await OutcomeRecorder(sleep=sleep).write(contended, queue="mail", key="n-2")
    assert sleeps == [0.1, 0.2]


async def test_leases_are_renewed_while_a_batch_is_being_sent() -> None:
    p = Platform()
    await p.contact("edu-4")
    recorded = await p.usecases.record_event(registered("edu-4"))
    renewed: list[bool] = []

    class SlowRelay(FakeMailSender):
        async def send(self, msg: OutgoingMail) -> None:
            p.clock.advance(LEASE - 1)  # nearly the whole lease goes by in this call
            await asyncio.sleep(0.2)  # real time: the keeper beats (every 0.05 s here)
            row = p.uow.state.notifications[recorded.notification_id]
            assert row.lease_until is not None
            renewed.append(row.lease_until >= p.clock.now + timedelta(seconds=LEASE - 1))
            await super().send(msg)

    worker = mail_worker(p, SlowRelay(), Outage(p.uow, until=1), keep_every_seconds=0.05)
    assert await worker.send_due() == 1
    assert renewed == [True] and p.status(recorded.notification_id) is S.SENT


async def test_outcomes_are_reported_to_the_observer() -> None:
    p = Platform(DeliveryError("451 busy", permanent=False), statuses=(500, 204))
    observer = CountingObserver()
    await p.contact("edu-5")
    await p.usecases.record_event(registered("edu-5"))
    await hook(p, "wh-5", "must", CERTIFICATE_ISSUED.type)
    await p.usecases.record_event(issued("edu-5"))
    mail = MailDelivery(
        p.uow, p.sender, p.composer, schedule(), mail_from="x@iioe.example", lease_seconds=LEASE, observer=observer
    )
    webhooks = WebhookDelivery(
        p.uow, p.poster, p.dead_letters, schedule(), lease_seconds=LEASE, targets=p.targets, observer=observer
    )
    for _ in range(3):
        await mail.send_due()
        await webhooks.deliver_next()
        p.clock.advance(10)
    assert observer.counts == {"mail_sent": 2, "mail_failed": 1, "webhook_sent": 1, "webhook_failed": 1}
