"""Background senders: one e-mail worker and a pool of webhook workers, each fed by its DB queue.

They are separate loops on purpose: a partner endpoint that hangs until its timeout occupies one
webhook worker, never the e-mail worker. Every loop claims rows with SKIP LOCKED, so replicas of
the service share the queues, and a crashed process's claims come back when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

import asyncpg
import httpx
from nats.js import JetStreamContext

from iioe.reference import Institution
from iioe.runtime.dlq import dead_letter
from iioe.runtime.logging import get_logger
from iioe.subjects import EVENTS_STREAM
from services.notifications import store
from services.notifications.domain import ProgrammeNames, mask_email
from services.notifications.mail import DeliveryError, MailSender
from services.notifications.rendering import MessageName, Renderer, TemplateContextError, build_email, resolve_language
from services.notifications.settings import NotificationsSettings
from services.notifications.webhooks import deliver, retry_delays

log = get_logger(__name__)
WEBHOOK_DLQ_REASON = "webhook_failed"
EXPIRY_SWEEP_SECONDS = 60.0


class Wakeable:
    """A poll loop that a handler can wake right after a commit instead of waiting for the next poll."""

    def __init__(self, poll_seconds: float) -> None:
        self._poll = poll_seconds
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), self._poll)
        self._event.clear()


def message_context(
    claimed: store.ClaimedNotification,
    contact: store.Contact,
    language: str,
    programmes: ProgrammeNames,
    institutions: Mapping[str, Institution],
) -> dict[str, Any]:
    """The stored event facts plus what depends on the person and their language."""
    context = dict(claimed.context)
    institution = institutions.get(str(context.get("institution")))
    if institution is not None:
        context["institution_name"] = institution.name_mn if language == "mn" else institution.name_en
    context["programme_name"] = programmes.name(context.get("programme_id"), language)
    context["full_name"] = contact.full_name
    return context


class MailWorker(Wakeable):
    """Claims due e-mail notifications, renders them in the educator's language and sends them.

    Order per row: claim (`sending`, lease) → SMTP/mailbox → `sent`. A crash after the relay accepted
    the message but before `sent` is committed sends it again after the lease: the one duplicate this
    design allows (the Message-ID is the notification id, so it is recognisable; the mailbox overwrites).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: MailSender,
        renderer: Renderer,
        settings: NotificationsSettings,
        programmes: ProgrammeNames,
        institutions: Mapping[str, Institution],
    ) -> None:
        super().__init__(settings.mail_poll_seconds)
        self._pool = pool
        self._sender = sender
        self._renderer = renderer
        self._settings = settings
        self._programmes = programmes
        self._institutions = institutions
        self._slots = asyncio.Semaphore(settings.mail_concurrency)
        self.sent = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while True:
            try:
                if loop.time() >= next_sweep:
                    expired = await store.expire_awaiting(self._pool, self._settings.contact_wait_seconds)
                    if expired:
                        log.warning("notifications expired without contact", count=expired)
                    next_sweep = loop.time() + EXPIRY_SWEEP_SECONDS
                claimed = await store.claim_notifications(
                    self._pool, self._settings.mail_batch_size, self._settings.send_lease_seconds
                )
                await asyncio.gather(*(self._send_bounded(row) for row in claimed))
            except Exception as exc:  # database gone for a moment: the leases keep the claims safe
                log.error("mail worker iteration failed", error=repr(exc))
                claimed = []
            if not claimed:
                await self._idle()

    async def _send_bounded(self, row: store.ClaimedNotification) -> None:
        async with self._slots:
            try:
                await self.send_one(row)
            except Exception as exc:  # e.g. the DB blinked while marking: the lease brings the row back
                log.error("notification send failed unexpectedly", notification_id=row.notification_id, error=repr(exc))

    async def send_one(self, row: store.ClaimedNotification) -> None:
        contacts = await store.get_contacts(self._pool, [row.educator_id])
        contact = contacts.get(row.educator_id)
        if contact is None:  # cannot happen for a `pending` row, but never send to nobody
            await store.mark_failed(self._pool, row, "no contact details for this educator")
            return
        language = resolve_language(row.language or contact.language)
        masked = mask_email(contact.email)
        try:
            context = message_context(row, contact, language, self._programmes, self._institutions)
            rendered = self._renderer.render(cast(MessageName, row.kind), language, context)
            msg = build_email(
                rendered, sender=self._settings.mail_from, recipient=contact.email, message_id=row.notification_id
            )
            await self._sender.send(msg)
        except (TemplateContextError, ValueError) as exc:
            await store.mark_failed(self._pool, row, f"cannot render: {exc}")
            log.error("notification cannot be rendered", notification_id=row.notification_id, error=str(exc))
            return
        except DeliveryError as exc:
            if exc.permanent or row.attempts >= self._settings.mail_max_attempts:
                await store.mark_failed(self._pool, row, exc.message)
                log.warning(
                    "notification failed",
                    notification_id=row.notification_id,
                    recipient=masked,
                    attempts=row.attempts,
                    permanent=exc.permanent,
                    error=exc.message,
                )
                return
            delay = retry_delays(
                row.attempts - 1, self._settings.mail_retry_base_seconds, self._settings.mail_retry_cap_seconds
            )
            await store.mark_retry(self._pool, row, exc.message, delay)
            log.info("notification will be retried", notification_id=row.notification_id, delay=round(delay, 3))
            return
        if await store.mark_sent(self._pool, row, contact.email):
            self.sent += 1
            log.info(
                "notification sent",
                notification_id=row.notification_id,
                kind=row.kind,
                language=language,
                recipient=masked,
                attempts=row.attempts,
            )
        else:  # our lease ran out and another worker took the row: it may send it again
            log.warning("notification lease lost before marking sent", notification_id=row.notification_id)


class WebhookWorkers(Wakeable):
    """`settings.webhook_workers` concurrent loops delivering signed CloudEvents to partner endpoints."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: Callable[[], JetStreamContext],
        settings: NotificationsSettings,
        dlq_consumer: str,
    ) -> None:
        super().__init__(settings.webhook_poll_seconds)
        self._pool = pool
        self._js = js
        self._settings = settings
        self._dlq_consumer = dlq_consumer
        self._client = httpx.AsyncClient()
        self.delivered = 0
        self.dead = 0

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        return [self._run() for _ in range(self._settings.webhook_workers)]

    async def close(self) -> None:
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                claimed = await store.claim_delivery(self._pool, self._settings.webhook_lease_seconds)
                if claimed is not None:
                    await self.deliver_one(claimed)
            except Exception as exc:
                log.error("webhook worker iteration failed", error=repr(exc))
                claimed = None
            if claimed is None:
                await self._idle()

    async def deliver_one(self, d: store.ClaimedDelivery) -> None:
        s = self._settings
        result = await deliver(self._client, d.url, d.secret, d.delivery_id, d.body, s.webhook_timeout_seconds)
        if result.ok:
            await store.finish_delivery(self._pool, d, status="delivered", status_code=result.status_code, error=None)
            self.delivered += 1
            log.info("webhook delivered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)
            return
        if d.attempts < s.webhook_max_attempts:
            delay = retry_delays(d.attempts - 1, s.webhook_retry_base_seconds, s.webhook_retry_cap_seconds)
            await store.finish_delivery(
                self._pool, d, status="pending", status_code=result.status_code, error=result.error, delay_seconds=delay
            )
            log.info(
                "webhook failed, will retry",
                delivery_id=d.delivery_id,
                webhook_id=d.webhook_id,
                attempts=d.attempts,
                delay=round(delay, 3),
                error=result.error,
            )
            return
        await self._dead_letter(d, result.error or "failed")
        await store.finish_delivery(self._pool, d, status="dead", status_code=result.status_code, error=result.error)
        self.dead += 1
        log.warning("webhook dead-lettered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)

    async def _dead_letter(self, d: store.ClaimedDelivery, error: str) -> None:
        """Make the give-up visible on IIOE_DLQ; the row's `dead` status stays the source of truth."""
        try:
            await dead_letter(
                self._js(),
                data=d.body,
                original_subject=d.event_subject,
                consumer=self._dlq_consumer,
                reason=WEBHOOK_DLQ_REASON,
                detail=f"delivery {d.delivery_id} to webhook {d.webhook_id} failed {d.attempts} times: {error}",
                original_stream=EVENTS_STREAM,
                deliveries=d.attempts,
                msg_id=f"webhook-dead:{d.delivery_id}",
            )
        except Exception as exc:  # NATS away: the delivery is still recorded `dead` and listable
            log.error("could not publish webhook dead letter", delivery_id=d.delivery_id, error=repr(exc))
