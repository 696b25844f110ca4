"""Application services of the notifications service: plain events and commands in, a unit of work out.

Recording is separate from sending on purpose: an event is acknowledged once its notifications are
safely stored (in the inbox transaction), so a slow SMTP relay or partner endpoint never holds up
the stream. The senders (`sending.py`) work the stored queues afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from iioe.events import TRAINEE_ATTENDED
from iioe.runtime.logging import get_logger
from services.notifications.domain import (
    DIGEST_TYPE,
    MESSAGE_FOR_TYPE,
    WAITS_FOR_ISSUED,
    Contact,
    Notification,
    NotificationStatus,
    NotifyingEvent,
    Session,
    attendance_notification_id,
    delivery_id,
    digest_notification_id,
    event_facts,
    previous_month,
)
from services.notifications.ports import NewDelivery, NewWebhook, Repositories, StoredMail, TargetGuard, UnitOfWork
from services.notifications.targets import TargetRefused

log = get_logger(__name__)
INBOX_CONSUMER = "notifications-events"
EXPIRY_BATCH = 500


@dataclass(frozen=True)
class EventToNotify:
    """An event that triggers an e-mail and may be forwarded: its envelope facts and its data."""

    source: str
    event_id: str
    event_type: str
    subject: str
    body: bytes
    """The CloudEvent exactly as received, forwarded byte for byte to partner webhooks."""
    data: NotifyingEvent

    def delivery_to(self, webhook_id: str) -> NewDelivery:
        """This event's delivery to one webhook (its id stable across retries and replays)."""
        return NewDelivery(
            delivery_id=delivery_id(webhook_id, self.source, self.event_id),
            webhook_id=webhook_id,
            event_id=self.event_id,
            event_type=self.event_type,
            event_subject=self.subject,
            body=self.body,
        )


@dataclass(frozen=True)
class Attended:
    """A trainee attended a session (TraineeAttended)."""

    source: str
    event_id: str
    session_id: str
    educator_id: str
    institution: str


@dataclass(frozen=True)
class ContactReceived:
    contact: Contact
    event_time: datetime


@dataclass(frozen=True)
class Recorded:
    notification_id: str
    queued: bool
    """False when the event was seen before (duplicate, redelivery, replay)."""
    awaiting_contact: bool
    webhooks: int


@dataclass(frozen=True)
class RegisterWebhook:
    webhook_id: str
    url: str
    institution: str
    event_types: list[str]
    secret: str


class NotificationUseCases:
    """Records notifications and webhook deliveries, hands contacts over, expires what waited too long,
    and administers partner webhooks. After a commit, `queued` nudges the mail sender and
    `deliveries_queued` (default: `queued`) the webhook senders — only the one that got work: waking
    every webhook worker for every event cost each a claim transaction per event (issue #11)."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        certification_url: str,
        contact_wait_seconds: float,
        queued: Callable[[], None] = lambda: None,
        deliveries_queued: Callable[[], None] | None = None,
        targets: TargetGuard | None = None,
        stored_mail: StoredMail | None = None,
    ) -> None:
        self._uow = uow
        self._certification_url = certification_url
        self._contact_wait = timedelta(seconds=contact_wait_seconds)
        self._queued = queued
        self._deliveries_queued = deliveries_queued or queued
        self._targets = targets
        self._stored_mail = stored_mail

    async def record_event(self, event: EventToNotify) -> Recorded:
        """One e-mail per (event, educator), plus one delivery per matching webhook — never twice.

        A mail about a certificate's suspension, reinstatement or revocation is `held` until the mail
        saying it was issued is sent (or given up): a replay or reordering never tells an educator
        "revoked" before "issued". Nothing is mailed to an erased educator."""
        data = event.data
        kind = MESSAGE_FOR_TYPE[event.event_type]
        async with self._uow.transaction() as repo:
            if not await repo.inbox.claim(INBOX_CONSUMER, f"{event.source} {event.event_id}"):
                log.debug("event already handled", event_id=event.event_id)
                return Recorded("", queued=False, awaiting_contact=False, webhooks=0)
            await repo.contacts.lock(data.educator_id)
            erased = await repo.erasures.erased(data.educator_id)
            contact = await repo.contacts.get(data.educator_id)
            context = event_facts(kind, data, self._certification_url)
            held = kind in WAITS_FOR_ISSUED and not await issued_mail_done(repo, str(context["certificate_id"]))
            notification = Notification.for_event(
                source=event.source,
                event_id=event.event_id,
                event_type=event.event_type,
                educator_id=data.educator_id,
                context=context,
                contact=contact,
                held=held,
            )
            queued = False if erased else await repo.notifications.add(notification)
            if kind == "certificate_issued":
                await repo.cascade.add_certified(data.educator_id, str(context["certificate_id"]))
            webhook_ids = await repo.webhooks.matching(data.institution, event.event_type)
            for webhook_id in webhook_ids:
                await repo.deliveries.add(event.delivery_to(webhook_id))
        if queued and notification.status is NotificationStatus.PENDING:
            self._queued()
        if webhook_ids:
            self._deliveries_queued()
        log.info(
            "notification queued" if queued else "notification not queued",
            notification_id=notification.notification_id,
            kind=kind,
            educator_id=data.educator_id,
            status=str(notification.status),
            erased=erased,
            webhooks=len(webhook_ids),
        )
        return Recorded(notification.notification_id, queued, contact is None, len(webhook_ids))

    # -- cascade training and progress (contract v1.1) -----------------------------------------

    async def record_session(self, source: str, event_id: str, session: Session) -> int:
        """Keep the session's details; trainees whose attendance arrived first get their mail now."""
        created = 0
        async with self._uow.transaction() as repo:
            if not await repo.inbox.claim(INBOX_CONSUMER, f"{source} {event_id}"):
                return 0
            await repo.cascade.add_session(session)
            known = await repo.cascade.session(session.session_id)
            assert known is not None
            for educator_id, institution, attended_event in await repo.cascade.attendances(session.session_id):
                if await self._attendance_mail(repo, known, educator_id, institution, attended_event):
                    created += 1
        if created:
            self._queued()
        log.info("training session recorded", session_id=session.session_id, mails=created)
        return created

    async def record_attendance(self, attended: Attended) -> bool:
        """Remember the attendance; mail the trainee once the session's details are known."""
        async with self._uow.transaction() as repo:
            if not await repo.inbox.claim(INBOX_CONSUMER, f"{attended.source} {attended.event_id}"):
                return False
            if await repo.erasures.erased(attended.educator_id):
                return False
            await repo.cascade.add_attendance(
                attended.session_id, attended.educator_id, attended.institution, attended.event_id
            )
            session = await repo.cascade.session(attended.session_id)
            created = session is not None and await self._attendance_mail(
                repo, session, attended.educator_id, attended.institution, attended.event_id
            )
        if created:
            self._queued()
        log.info(
            "attendance recorded", session_id=attended.session_id, educator_id=attended.educator_id, mailed=created
        )
        return created

    async def _attendance_mail(
        self, repo: Repositories, session: Session, educator_id: str, institution: str, event_id: str
    ) -> bool:
        await repo.contacts.lock(educator_id)
        if await repo.erasures.erased(educator_id):
            return False
        notification = Notification.create(
            notification_id=attendance_notification_id(session.session_id, educator_id),
            event_id=event_id,
            event_type=TRAINEE_ATTENDED.type,
            kind="session_attended",
            educator_id=educator_id,
            context=session.facts(institution),
            contact=await repo.contacts.get(educator_id),
        )
        return await repo.notifications.add(notification)

    async def record_completion(self, educator_id: str, course_id: str) -> bool:
        """A course completion counts towards the trainee's progress in their master teacher's digest."""
        async with self._uow.transaction() as repo:
            if await repo.erasures.erased(educator_id):
                return False
            return await repo.cascade.add_completion(educator_id, course_id)

    async def schedule_digests(self, now: datetime) -> int:
        """At most one digest per master teacher per month: the previous month's, once it is over.

        One transaction per master teacher (claim + snapshot + mail), so a busy teacher's lock never
        holds up the others and a failure leaves the rest done."""
        month, first, last = previous_month(now)
        async with self._uow.transaction() as repo:
            teachers = await repo.cascade.master_teachers(last)
        created = 0
        for teacher in teachers:
            async with self._uow.transaction() as repo:
                await repo.contacts.lock(teacher)
                if await repo.erasures.erased(teacher) or not await repo.cascade.claim_digest(teacher, month):
                    continue
                facts: dict[str, Any] = dict(await repo.cascade.digest_facts(teacher, first, last))
                contact = await repo.contacts.get(teacher)
                notification = Notification.create(
                    notification_id=digest_notification_id(teacher, month),
                    event_id=f"digest-{month}",
                    event_type=DIGEST_TYPE,
                    kind="monthly_digest",
                    educator_id=teacher,
                    context={**facts, "month": month, "institution": contact.institution if contact else None},
                    contact=contact,
                )
                created += await repo.notifications.add(notification)
        if created:
            self._queued()
            log.info("monthly digests queued", month=month, count=created)
        return created

    # -- erasure ---------------------------------------------------------------------------------

    async def erase_educator(self, educator_id: str, erased_at: datetime) -> int:
        """Forget the educator: contact deleted, unsent mail expired, addresses dropped; idempotent.

        The id is kept (`erasures`) so that a contact or event replayed later never brings the data
        back. Returns how many unsent notifications were stopped."""
        async with self._uow.transaction() as repo:
            await repo.contacts.lock(educator_id)
            first = await repo.erasures.add(educator_id, erased_at)
            await repo.contacts.delete(educator_id)
            stopped = await repo.notifications.erase(educator_id)
            await repo.cascade.forget(educator_id)
            ids = [r["notification_id"] for r in await repo.notifications.find(educator_id, None, None, 100_000)]
        removed = await self._stored_mail.forget(ids) if self._stored_mail is not None else 0
        log.info("educator erased", educator_id=educator_id, stopped=stopped, first_time=first, files_removed=removed)
        return stopped

    async def apply_contact(self, received: ContactReceived) -> int:
        """Remember how to reach the educator; what waited for the address becomes sendable."""
        educator_id = received.contact.educator_id
        released = 0
        async with self._uow.transaction() as repo:
            await repo.contacts.lock(educator_id)
            if await repo.erasures.erased(educator_id):
                log.info("contact of an erased educator ignored", educator_id=educator_id)
                return 0
            newer = await repo.contacts.upsert(received.contact, received.event_time)
            contact = await repo.contacts.get(educator_id)
            assert contact is not None
            for waiting in await repo.notifications.awaiting_contact(educator_id):
                if await repo.notifications.save(waiting.contact_arrived(contact), NotificationStatus.AWAITING_CONTACT):
                    released += 1
        if released:
            self._queued()
        log.info("contact stored", educator_id=educator_id, newer=newer, released=released)
        return released

    async def expire_overdue(self, now: datetime) -> int:
        """Give up on notifications whose contact never came (the contacts stream no longer holds it),
        and on held ones whose certificate's issued mail never came."""
        expired = 0
        async with self._uow.transaction() as repo:
            for overdue in await repo.notifications.overdue(now - self._contact_wait, EXPIRY_BATCH):
                reason = (
                    "the certificate's issued mail never came"
                    if overdue.status is NotificationStatus.HELD
                    else "no contact details received"
                )
                if await repo.notifications.save(overdue.expire(reason), overdue.status):
                    expired += 1
                    if overdue.kind == "certificate_issued" and overdue.certificate_id:
                        await release_held(repo, overdue.certificate_id)
        if expired:
            log.warning("notifications expired", count=expired)
        return expired

    # -- partner webhooks (operator commands and queries) -------------------------------------

    async def register_webhook(self, cmd: RegisterWebhook) -> dict[str, Any]:
        """Raises `TargetRefused` for a URL that may not receive webhooks (see `targets.py`)."""
        if self._targets is None:
            raise TargetRefused("webhook_target_forbidden", "no webhook target policy configured")
        await self._targets.resolve(cmd.url)
        async with self._uow.transaction() as repo:
            row = await repo.webhooks.create(
                NewWebhook(cmd.webhook_id, cmd.url, cmd.institution, list(cmd.event_types), cmd.secret)
            )
        log.info("webhook registered", webhook_id=cmd.webhook_id, institution=cmd.institution)
        return row

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Stop sending to an endpoint: queued deliveries are cancelled, history is kept."""
        async with self._uow.transaction() as repo:
            if not await repo.webhooks.delete(webhook_id):
                return False
            cancelled = await repo.deliveries.cancel_pending(webhook_id)
        log.info("webhook deleted", webhook_id=webhook_id, cancelled=cancelled)
        return True

    async def redrive_delivery(self, delivery_id: str) -> bool:
        async with self._uow.transaction() as repo:
            done = await repo.deliveries.redrive(delivery_id)
        if done:
            self._deliveries_queued()
        return done

    async def webhooks(self) -> list[dict[str, Any]]:
        async with self._uow.transaction() as repo:
            return await repo.webhooks.live()

    async def deliveries(
        self, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        async with self._uow.transaction() as repo:
            return await repo.deliveries.find(status, webhook_id, event_id, limit)

    async def notifications(
        self, educator_id: str | None, status: str | None, limit: int, *, institution: str | None = None
    ) -> list[dict[str, Any]]:
        """Notifications (newest state); `institution` limits them to one institution's educators."""
        async with self._uow.transaction() as repo:
            return await repo.notifications.find(educator_id, status, institution, limit)


async def issued_mail_done(repo: Repositories, certificate_id: str) -> bool:
    """True when the certificate's issued mail exists and will never be sent later (sent or given up)."""
    issued = await repo.notifications.of_certificate(certificate_id, "certificate_issued")
    return bool(issued) and all(n.final for n in issued)


async def release_held(repo: Repositories, certificate_id: str) -> int:
    """The issued mail is done: the certificate's held mails may go (in the order they were recorded)."""
    if not await issued_mail_done(repo, certificate_id):
        return 0
    released = 0
    for waiting in await repo.notifications.held(certificate_id):
        await repo.contacts.lock(waiting.educator_id)
        contact = await repo.contacts.get(waiting.educator_id)
        if await repo.notifications.save(waiting.release(contact), NotificationStatus.HELD):
            released += 1
    if released:
        log.info("held notifications released", certificate_id=certificate_id, released=released)
    return released
