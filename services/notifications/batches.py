"""The consumers' fast path: a fetched batch of notifying events, or of contacts, in one transaction.

Why: one transaction per event (inbox claim, educator lock, erasure check, contact, insert, webhook
lookup — ten round trips with BEGIN/COMMIT) made the event consumer, not the mail sender, the
service's limit once e-mails became cheap to build (issue #11). Here each batch does the same
steps set-wise: one inbox claim, the educators locked in sorted order, erasures and contacts read
once, the notifications inserted in one `executemany`. The decisions are those of
`NotificationUseCases.record_event` / `apply_contact` (same ids, same statuses, nothing for an
erased educator, revocation mails held); `test_batches.py` checks a batch against single events.
On any error the consumer hands the batch back and handles its events one by one (the inbox skips
those already committed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from iioe.runtime.logging import get_logger
from services.notifications.domain import (
    MESSAGE_FOR_TYPE,
    WAITS_FOR_ISSUED,
    Notification,
    NotificationStatus,
    event_facts,
)
from services.notifications.ports import NewDelivery, UnitOfWork
from services.notifications.usecases import INBOX_CONSUMER, ContactReceived, EventToNotify, issued_mail_done

log = get_logger(__name__)


class BatchUseCases:
    """`record_events` and `apply_contacts`: many events in one transaction, decided as one by one."""

    def __init__(
        self,
        uow: UnitOfWork,
        *,
        certification_url: str,
        queued: Callable[[], None] = lambda: None,
        deliveries_queued: Callable[[], None] | None = None,
    ) -> None:
        self._uow = uow
        self._certification_url = certification_url
        self._queued = queued
        self._deliveries_queued = deliveries_queued or queued

    async def record_events(self, events: Sequence[EventToNotify]) -> list[Notification]:
        """`record_event` for each event, in one transaction; returns the notifications inserted."""
        keys = [f"{e.source} {e.event_id}" for e in events]
        async with self._uow.transaction() as repo:
            fresh = await repo.inbox.claim_many(INBOX_CONSUMER, keys)
            todo: list[EventToNotify] = []
            for event, key in zip(events, keys, strict=True):
                if key in fresh:
                    fresh.discard(key)  # the same event twice in one batch is handled once
                    todo.append(event)
            educators = sorted({e.data.educator_id for e in todo})
            await repo.contacts.lock_many(educators)
            erased = await repo.erasures.erased_many(educators)
            contacts = await repo.contacts.get_many(educators)
            hooks: dict[tuple[str, str], list[str]] = {}
            notifications: list[Notification] = []
            deliveries: list[NewDelivery] = []
            for event in todo:
                data = event.data
                kind = MESSAGE_FOR_TYPE[event.event_type]
                context = event_facts(kind, data, self._certification_url)
                held = kind in WAITS_FOR_ISSUED and not await issued_mail_done(repo, str(context["certificate_id"]))
                if data.educator_id not in erased:
                    notifications.append(
                        Notification.for_event(
                            source=event.source,
                            event_id=event.event_id,
                            event_type=event.event_type,
                            educator_id=data.educator_id,
                            context=context,
                            contact=contacts.get(data.educator_id),
                            held=held,
                        )
                    )
                if kind == "certificate_issued":
                    await repo.cascade.add_certified(data.educator_id, str(context["certificate_id"]))
                route = (data.institution, event.event_type)
                if route not in hooks:
                    hooks[route] = await repo.webhooks.matching(*route)
                deliveries += [event.delivery_to(webhook_id) for webhook_id in hooks[route]]
            added = await repo.notifications.add_many(notifications)
            for delivery in deliveries:
                await repo.deliveries.add(delivery)
        inserted = [n for n in notifications if n.notification_id in added]
        if any(n.status is NotificationStatus.PENDING for n in inserted):
            self._queued()
        if deliveries:
            self._deliveries_queued()
        log.info(
            "notifications queued",
            events=len(events),
            new=len(todo),
            queued=len(inserted),
            erased=sum(e.data.educator_id in erased for e in todo),
            webhooks=len(deliveries),
        )
        return inserted

    async def apply_contacts(self, received: Sequence[ContactReceived]) -> int:
        """`apply_contact` for each contact (in order: the newest wins), in one transaction; returns how
        many waiting notifications became sendable."""
        educators = sorted({r.contact.educator_id for r in received})
        released = 0
        async with self._uow.transaction() as repo:
            await repo.contacts.lock_many(educators)
            erased = await repo.erasures.erased_many(educators)
            live = [r for r in received if r.contact.educator_id not in erased]
            await repo.contacts.upsert_many([(r.contact, r.event_time) for r in live])
            known = sorted({r.contact.educator_id for r in live})
            contacts = await repo.contacts.get_many(known)
            for waiting in await repo.notifications.awaiting_contact_many(known):
                arrived = waiting.contact_arrived(contacts[waiting.educator_id])
                released += await repo.notifications.save(arrived, NotificationStatus.AWAITING_CONTACT)
        if released:
            self._queued()
        log.info("contacts stored", contacts=len(received), erased=len(received) - len(live), released=released)
        return released
