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

from iioe.runtime.logging import get_logger
from services.notifications.domain import (
    MESSAGE_FOR_TYPE,
    Contact,
    Notification,
    NotificationStatus,
    NotifyingEvent,
    delivery_id,
    event_facts,
)
from services.notifications.ports import NewDelivery, NewWebhook, UnitOfWork

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
    and administers partner webhooks. `queued` nudges the senders after a commit."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        certification_url: str,
        contact_wait_seconds: float,
        queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._certification_url = certification_url
        self._contact_wait = timedelta(seconds=contact_wait_seconds)
        self._queued = queued

    async def record_event(self, event: EventToNotify) -> Recorded:
        """One e-mail per (event, educator), plus one delivery per matching webhook — never twice."""
        data = event.data
        kind = MESSAGE_FOR_TYPE[event.event_type]
        async with self._uow.transaction() as repo:
            if not await repo.inbox.claim(INBOX_CONSUMER, f"{event.source} {event.event_id}"):
                log.debug("event already handled", event_id=event.event_id)
                return Recorded("", queued=False, awaiting_contact=False, webhooks=0)
            await repo.contacts.lock(data.educator_id)
            contact = await repo.contacts.get(data.educator_id)
            notification = Notification.for_event(
                source=event.source,
                event_id=event.event_id,
                event_type=event.event_type,
                educator_id=data.educator_id,
                context=event_facts(kind, data, self._certification_url),
                contact=contact,
            )
            queued = await repo.notifications.add(notification)
            webhook_ids = await repo.webhooks.matching(data.institution, event.event_type)
            for webhook_id in webhook_ids:
                await repo.deliveries.add(
                    NewDelivery(
                        delivery_id=delivery_id(webhook_id, event.source, event.event_id),
                        webhook_id=webhook_id,
                        event_id=event.event_id,
                        event_type=event.event_type,
                        event_subject=event.subject,
                        body=event.body,
                    )
                )
        self._queued()
        log.info(
            "notification queued" if queued else "notification already queued",
            notification_id=notification.notification_id,
            kind=kind,
            educator_id=data.educator_id,
            awaiting_contact=contact is None,
            webhooks=len(webhook_ids),
        )
        return Recorded(notification.notification_id, queued, contact is None, len(webhook_ids))

    async def apply_contact(self, received: ContactReceived) -> int:
        """Remember how to reach the educator; what waited for the address becomes sendable."""
        educator_id = received.contact.educator_id
        released = 0
        async with self._uow.transaction() as repo:
            await repo.contacts.lock(educator_id)
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
        """Give up on notifications whose contact never came: the contacts stream no longer holds it."""
        expired = 0
        async with self._uow.transaction() as repo:
            for overdue in await repo.notifications.overdue(now - self._contact_wait, EXPIRY_BATCH):
                if await repo.notifications.save(overdue.expire(), NotificationStatus.AWAITING_CONTACT):
                    expired += 1
        if expired:
            log.warning("notifications expired without contact", count=expired)
        return expired

    # -- partner webhooks (operator commands and queries) -------------------------------------

    async def register_webhook(self, cmd: RegisterWebhook) -> dict[str, Any]:
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
            self._queued()
        return done

    async def webhooks(self) -> list[dict[str, Any]]:
        async with self._uow.transaction() as repo:
            return await repo.webhooks.live()

    async def deliveries(
        self, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        async with self._uow.transaction() as repo:
            return await repo.deliveries.find(status, webhook_id, event_id, limit)

    async def notifications(self, educator_id: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._uow.transaction() as repo:
            return await repo.notifications.find(educator_id, status, limit)
