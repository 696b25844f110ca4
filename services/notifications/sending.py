"""Sending use cases: work the stored queues (e-mail, partner webhooks) through their ports.

Order per row: claim (`sending`, lease, token) → network call outside any transaction → record the
outcome, only if the token still holds. A crash after the relay accepted a mail but before `sent`
is committed sends it again after the lease: the one duplicate SMTP allows (same Message-ID, so it
is recognisable; the mailbox overwrites its file).
"""

from __future__ import annotations

import asyncio

from iioe.runtime.logging import get_logger
from services.notifications.domain import GiveUp, Notification, RetrySchedule, mask_email, resolve_language
from services.notifications.ports import (
    ClaimedDelivery,
    ClaimedNotification,
    Composer,
    DeadLetters,
    DeliveryError,
    MailSender,
    UnitOfWork,
    WebhookPoster,
)

log = get_logger(__name__)


class MailDelivery:
    """Claims due e-mail notifications, renders them in the educator's language and sends them."""

    def __init__(
        self,
        uow: UnitOfWork,
        sender: MailSender,
        composer: Composer,
        schedule: RetrySchedule,
        *,
        mail_from: str,
        lease_seconds: float,
        batch_size: int = 50,
        concurrency: int = 8,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._composer = composer
        self._schedule = schedule
        self._mail_from = mail_from
        self._lease = lease_seconds
        self._batch = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self.sent = 0

    async def send_due(self) -> int:
        """Send one batch of due notifications (in parallel, bounded); returns how many were claimed."""
        async with self._uow.transaction() as repo:
            claimed = await repo.mail.claim(self._batch, self._lease)
        await asyncio.gather(*(self._send_bounded(c) for c in claimed))
        return len(claimed)

    async def _send_bounded(self, claimed: ClaimedNotification) -> None:
        async with self._slots:
            try:
                await self.send(claimed)
            except Exception as exc:  # e.g. the DB blinked while marking: the lease brings the row back
                log.error(
                    "notification send failed unexpectedly",
                    notification_id=claimed.notification.notification_id,
                    error=repr(exc),
                )

    async def send(self, claimed: ClaimedNotification) -> None:
        n = claimed.notification
        async with self._uow.transaction() as repo:
            contact = await repo.contacts.get(n.educator_id)
        if contact is None:  # cannot happen for a `pending` row, but never send to nobody
            await self._finish(claimed, n.fail("no contact details for this educator"))
            return
        language = resolve_language(n.language or contact.language)
        try:
            msg = self._composer.compose(n, contact, language, self._mail_from)
            await self._sender.send(msg)
        except DeliveryError as exc:
            decision = self._schedule.after_failure(n.attempts, permanent=exc.permanent)
            if isinstance(decision, GiveUp):
                await self._finish(claimed, n.fail(exc.message))
                log.warning(
                    "notification failed",
                    notification_id=n.notification_id,
                    recipient=mask_email(contact.email),
                    attempts=n.attempts,
                    permanent=exc.permanent,
                    error=exc.message,
                )
            else:
                await self._finish(claimed, n.retry_later(exc.message, decision.after_seconds))
                log.info(
                    "notification will be retried",
                    notification_id=n.notification_id,
                    delay=round(decision.after_seconds, 3),
                )
            return
        except ValueError as exc:  # a template needs a value the event did not carry: no retry can help
            await self._finish(claimed, n.fail(f"cannot render: {exc}"))
            log.error("notification cannot be rendered", notification_id=n.notification_id, error=str(exc))
            return
        if await self._finish(claimed, n.sent(contact.email)):
            self.sent += 1
            log.info(
                "notification sent",
                notification_id=n.notification_id,
                kind=n.kind,
                language=language,
                recipient=mask_email(contact.email),
                attempts=n.attempts,
            )
        else:  # our lease ran out and another worker took the row: it may send it again
            log.warning("notification lease lost before marking sent", notification_id=n.notification_id)

    async def _finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        async with self._uow.transaction() as repo:
            return await repo.mail.finish(claimed, outcome)


class WebhookDelivery:
    """Delivers signed CloudEvents to partner endpoints, one claimed delivery at a time per worker."""

    def __init__(
        self,
        uow: UnitOfWork,
        poster: WebhookPoster,
        dead_letters: DeadLetters,
        schedule: RetrySchedule,
        *,
        lease_seconds: float,
    ) -> None:
        self._uow = uow
        self._poster = poster
        self._dead_letters = dead_letters
        self._schedule = schedule
        self._lease = lease_seconds
        self.delivered = 0
        self.dead = 0

    async def deliver_next(self) -> int:
        """Deliver one due delivery; returns 1 if there was one, else 0 (the caller idles)."""
        async with self._uow.transaction() as repo:
            claimed = await repo.deliveries.claim(self._lease)
        if claimed is None:
            return 0
        await self.deliver(claimed)
        return 1

    async def deliver(self, d: ClaimedDelivery) -> None:
        result = await self._poster.post(d.url, d.secret, d.delivery_id, d.body)
        if result.ok:
            async with self._uow.transaction() as repo:
                await repo.deliveries.delivered(d, result.status_code)
            self.delivered += 1
            log.info("webhook delivered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)
            return
        decision = self._schedule.after_failure(d.attempts)
        if not isinstance(decision, GiveUp):
            async with self._uow.transaction() as repo:
                await repo.deliveries.retry(d, result.status_code, result.error, decision.after_seconds)
            log.info(
                "webhook failed, will retry",
                delivery_id=d.delivery_id,
                webhook_id=d.webhook_id,
                attempts=d.attempts,
                delay=round(decision.after_seconds, 3),
                error=result.error,
            )
            return
        await self._dead_letters.webhook_failed(d, result.error or "failed")
        async with self._uow.transaction() as repo:
            await repo.deliveries.dead(d, result.status_code, result.error)
        self.dead += 1
        log.warning("webhook dead-lettered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)
