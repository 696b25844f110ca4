"""Sending use cases: work the stored queues (e-mail, partner webhooks) through their ports.

Order per row: claim (`sending`, lease, token) → network call outside any transaction → record the
outcome, only if the token still holds. A crash after the relay accepted a mail but before `sent`
is committed sends it again after the lease: the one duplicate SMTP allows (same Message-ID, so it
is recognisable; the mailbox overwrites its file).
"""

from __future__ import annotations

import asyncio

from iioe.runtime.logging import get_logger
from services.notifications.domain import GiveUp, Notification, RetrySchedule, resolve_language, scrub_addresses
from services.notifications.ports import (
    ClaimedDelivery,
    ClaimedNotification,
    Composer,
    DeadLetters,
    DeliveryError,
    DeliveryResult,
    MailSender,
    TargetGuard,
    UnitOfWork,
    WebhookPoster,
)
from services.notifications.targets import FORBIDDEN, TargetRefused
from services.notifications.usecases import release_held

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
                    error=scrub_addresses(repr(exc)),
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
            error = scrub_addresses(exc.message)  # never store or log an address a server echoed
            decision = self._schedule.after_failure(n.attempts, permanent=exc.permanent)
            if isinstance(decision, GiveUp):
                await self._finish(claimed, n.fail(error))
                log.warning(
                    "notification failed",
                    notification_id=n.notification_id,
                    attempts=n.attempts,
                    permanent=exc.permanent,
                    error=error,
                )
            else:
                await self._finish(claimed, n.retry_later(error, decision.after_seconds))
                log.info(
                    "notification will be retried",
                    notification_id=n.notification_id,
                    delay=round(decision.after_seconds, 3),
                )
            return
        except ValueError as exc:  # a template needs a value the event did not carry: no retry can help
            error = scrub_addresses(f"cannot render: {exc}")
            await self._finish(claimed, n.fail(error))
            log.error("notification cannot be rendered", notification_id=n.notification_id, error=error)
            return
        if await self._finish(claimed, n.sent(contact.email)):
            self.sent += 1
            log.info(
                "notification sent",
                notification_id=n.notification_id,
                kind=n.kind,
                language=language,
                attempts=n.attempts,
            )
        else:  # our lease ran out and another worker took the row: it may send it again
            log.warning("notification lease lost before marking sent", notification_id=n.notification_id)

    async def _finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        """Record the outcome; a certificate's issued mail that is done lets its held mails go."""
        async with self._uow.transaction() as repo:
            if outcome.kind == "certificate_issued":
                await repo.contacts.lock(outcome.educator_id)
            finished = await repo.mail.finish(claimed, outcome)
            if finished and outcome.final and outcome.kind == "certificate_issued" and outcome.certificate_id:
                await release_held(repo, outcome.certificate_id)
            return finished


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
        targets: TargetGuard,
    ) -> None:
        self._uow = uow
        self._poster = poster
        self._targets = targets
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
        """Check the target again (its name may resolve elsewhere now), then post to the checked address.

        A target that now resolves to a forbidden address is given up at once, without sending."""
        try:
            target = await self._targets.resolve(d.url)
        except TargetRefused as exc:
            result = DeliveryResult(None, f"{exc.code}: {exc.message}", False, 0.0)
            if exc.code == FORBIDDEN:
                await self._give_up(d, result)
                return
        else:
            result = await self._poster.post(target, d.secret, d.delivery_id, d.body)
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
        await self._give_up(d, result)

    async def _give_up(self, d: ClaimedDelivery, result: DeliveryResult) -> None:
        await self._dead_letters.webhook_failed(d, result.error or "failed")
        async with self._uow.transaction() as repo:
            await repo.deliveries.dead(d, result.status_code, result.error)
        self.dead += 1
        log.warning("webhook dead-lettered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)
