"""Event handlers: they only record what must be sent (in the inbox transaction); workers send it.

Keeping the network out of the handler means a slow SMTP relay or partner endpoint never holds up
the stream, and an event is acknowledged only once its notifications are safely in the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from iioe.events import EducatorContact
from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.inbox import claim
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from services.notifications import store
from services.notifications.domain import EMAIL, MESSAGE_FOR_TYPE, delivery_id, notification_id, verify_url
from services.notifications.settings import NotificationsSettings

log = get_logger(__name__)
INBOX_CONSUMER = "notifications-events"


class NotificationHandlers:
    """Turns events into queued e-mails and webhook deliveries; `wake` nudges the workers after commit."""

    def __init__(
        self, runtime: ServiceRuntime, settings: NotificationsSettings, wake: Callable[[], None] = lambda: None
    ) -> None:
        self._runtime = runtime
        self._settings = settings
        self._wake = wake

    async def on_event(self, received: ReceivedEvent) -> None:
        """EducatorRegistered / CertificateIssued / CertificateRevoked → one e-mail + matching webhooks."""
        kind = MESSAGE_FOR_TYPE.get(received.event.type)
        if kind is None:
            return  # another event type on the filtered subjects: nothing to tell anyone
        data: Any = received.event.data
        source = received.event.source
        async with self._runtime.transaction() as conn:
            if not await claim(conn, INBOX_CONSUMER, f"{source} {received.id}"):
                log.debug("event already handled")
                return
            await store.lock_educator(conn, data.educator_id)
            contacts = await store.get_contacts(conn, [data.educator_id])
            contact = contacts.get(data.educator_id)
            notification = store.NewNotification(
                notification_id=notification_id(source, received.id, EMAIL, data.educator_id),
                event_id=received.id,
                event_type=received.event.type,
                kind=kind,
                channel=EMAIL,
                educator_id=data.educator_id,
                context=self._context(kind, data),
            )
            queued = await store.insert_notification(conn, notification, contact)
            webhook_ids = await store.matching_webhooks(conn, data.institution, received.event.type)
            body = received.event.to_json_bytes()
            for webhook_id in webhook_ids:
                await store.insert_delivery(
                    conn,
                    delivery_id(webhook_id, source, received.id),
                    webhook_id,
                    received.id,
                    received.event.type,
                    received.subject,
                    body,
                )
        self._wake()
        log.info(
            "notification queued" if queued else "notification already queued",
            notification_id=notification.notification_id,
            kind=kind,
            educator_id=data.educator_id,
            awaiting_contact=contact is None,
            webhooks=len(webhook_ids),
        )

    async def on_contact(self, received: ReceivedEvent) -> None:
        """Remember how to reach the educator and release what was waiting for the address."""
        data: EducatorContact = received.event.data
        async with self._runtime.transaction() as conn:
            await store.lock_educator(conn, data.educator_id)
            newer = await store.upsert_contact(conn, data, received.event.time)
            contact = (await store.get_contacts(conn, [data.educator_id]))[data.educator_id]
            released = await store.release_awaiting(conn, contact)
        if released:
            self._wake()
        log.info("contact stored", educator_id=data.educator_id, newer=newer, released=released)

    def _context(self, kind: str, data: Any) -> dict[str, Any]:
        """What the template needs from the event; names and addresses are added at send time."""
        if kind == "welcome":
            return {"institution": data.institution}
        if kind == "certificate_issued":
            return {
                "institution": data.institution,
                "certificate_id": data.certificate_id,
                "programme_id": data.programme_id,
                "credits": data.credits,
                "issued_at": data.issued_at.isoformat(),
                "verify_url": verify_url(self._settings.certification_url, data.certificate_id),
            }
        return {
            "institution": data.institution,
            "certificate_id": data.certificate_id,
            "reason": data.reason,
            "revoked_at": data.revoked_at.isoformat(),
            "verify_url": verify_url(self._settings.certification_url, data.certificate_id),
        }
