"""Sending use cases: work the stored queues (e-mail, partner webhooks) through their ports.

Order per row: claim (`sending`, lease, token) → network call outside any transaction → record the
outcome, only if the token still holds. While a worker holds rows it renews their lease every third
of it (`keep_leases`), so a slow send, a row waiting for a free slot or an outcome waiting for the
database is never taken over by another worker.

Once the network call has happened, its outcome *must* be recorded: a mail the relay accepted and a
webhook the partner answered are facts. `OutcomeRecorder` retries the write while the database is
unreachable (`is_infrastructure_error`), with capped backoff and for as long as the outage lasts,
and meanwhile this process claims nothing new. So a database outage sends nothing twice; only a
crash (or SIGTERM) between the relay's acceptance and the commit of `sent` can: after the lease
the mail goes out again with the same Message-ID (the one duplicate SMTP allows; the mailbox
overwrites its file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from iioe.runtime.logging import get_logger
from services.notifications.domain import (
    Contact,
    GiveUp,
    Notification,
    RetrySchedule,
    resolve_language,
    scrub_addresses,
)
from services.notifications.ports import (
    ClaimedDelivery,
    ClaimedNotification,
    Composer,
    DeadLetters,
    DeliveryError,
    DeliveryResult,
    MailSender,
    Repositories,
    SendingObserver,
    StoredMail,
    TargetGuard,
    UnitOfWork,
    WebhookPoster,
)
from services.notifications.recording import (
    RECORD_RETRY_INITIAL_SECONDS,
    RECORD_RETRY_MAX_SECONDS,
    TRANSIENT_DATABASE_ERRORS,
    OutcomeRecorder,
    Unobserved,
    keep_leases,
    retryable,
)
from services.notifications.targets import FORBIDDEN, TargetRefused
from services.notifications.usecases import release_held

__all__ = [
    "RECORD_RETRY_INITIAL_SECONDS",
    "RECORD_RETRY_MAX_SECONDS",
    "TRANSIENT_DATABASE_ERRORS",
    "MailDelivery",
    "OutcomeRecorder",
    "Unobserved",
    "WebhookDelivery",
    "keep_leases",
    "retryable",
]
log = get_logger(__name__)
Outcome = tuple[ClaimedNotification, Notification]


class MailDelivery:
    """Claims due e-mail notifications, renders them in the educator's language and sends them.

    Per batch: one transaction claims the rows and reads their contacts; the mails are composed and
    handed to the sender in parallel (`concurrency`); outcomes that arrive together are recorded
    together (`_finish` → `_flush`: one transaction, one UPDATE for the sent ones), so the database
    work per mail is a fraction of a round trip instead of two transactions. An outcome is never held
    back waiting for others: whatever has arrived while the previous write ran is written next.
    """

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
        observer: SendingObserver | None = None,
        recorder: OutcomeRecorder | None = None,
        keep_every_seconds: float | None = None,
        stored_mail: StoredMail | None = None,
    ) -> None:
        self._uow = uow
        self._sender = sender
        self._stored_mail = stored_mail
        self._composer = composer
        self._schedule = schedule
        self._mail_from = mail_from
        self._lease = lease_seconds
        self._keep_every = keep_every_seconds or lease_seconds / 3
        self._batch = batch_size
        self._slots = asyncio.Semaphore(concurrency)
        self._observer = observer or Unobserved()
        self.recorder = recorder or OutcomeRecorder()
        self.sent = 0
        self._outcomes: list[tuple[ClaimedNotification, Notification, asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def send_due(self) -> int:
        """Send one batch of due notifications (in parallel, bounded); returns how many were claimed.

        The whole batch's leases are renewed until its last outcome is recorded."""
        await self.recorder.settled()
        async with self._uow.transaction() as repo:
            claimed = await repo.mail.claim(self._batch, self._lease)
            educators = sorted({c.notification.educator_id for c in claimed})
            contacts = await repo.contacts.get_many(educators) if claimed else {}
        if not claimed:
            return 0
        held = list(claimed)

        async def extend() -> None:
            async with self._uow.transaction() as repo:
                await repo.mail.extend(list(held), self._lease)

        async with keep_leases(extend, self._keep_every):
            await asyncio.gather(
                *(self._send_bounded(c, contacts.get(c.notification.educator_id), held) for c in claimed)
            )
        return len(claimed)

    async def _send_bounded(
        self, claimed: ClaimedNotification, contact: Contact | None, held: list[ClaimedNotification]
    ) -> None:
        try:
            async with self._slots:
                await self.send(claimed, contact)
        except Exception as exc:  # not the world (that is retried): the lease brings the row back
            log.error(
                "notification send failed unexpectedly",
                notification_id=claimed.notification.notification_id,
                error=scrub_addresses(repr(exc)),
            )
        finally:
            held.remove(claimed)

    async def send(self, claimed: ClaimedNotification, contact: Contact | None) -> None:
        """Compose and hand over one claimed mail to `contact` (read when it was claimed), then record it."""
        n = claimed.notification
        if contact is None:  # cannot happen for a `pending` row, but never send to nobody
            self._observer.mail_failed()
            await self._finish(claimed, n.fail("no contact details for this educator"))
            return
        language = resolve_language(n.language or contact.language)
        try:
            mail = self._composer.compose(n, contact, language, self._mail_from)
            await self._sender.send(mail)
        except DeliveryError as exc:
            self._observer.mail_failed()
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
            self._observer.mail_failed()
            error = scrub_addresses(f"cannot render: {exc}")
            await self._finish(claimed, n.fail(error))
            log.error("notification cannot be rendered", notification_id=n.notification_id, error=error)
            return
        # the relay has the mail: from here on, only recording it remains (through any outage)
        finished = await self._finish(claimed, n.sent(contact.email))
        self._observer.mail_sent()
        if finished:
            self.sent += 1
            log.info(
                "notification sent",
                notification_id=n.notification_id,
                kind=n.kind,
                language=language,
                attempts=n.attempts,
            )
        else:  # the row was taken from us (erased meanwhile, or our lease ran out on another replica)
            log.warning("notification no longer ours when marking sent", notification_id=n.notification_id)
            await self._forget_if_erased(n)

    async def _forget_if_erased(self, n: Notification) -> None:
        """An erasure that came while this mail was being stored deleted the person's copies before this
        one existed: delete it too (a lease taken over by another replica keeps its rewritten file)."""
        if self._stored_mail is None:
            return
        async with self._uow.transaction() as repo:
            erased = await repo.erasures.erased(n.educator_id)
        if erased:
            await self._stored_mail.forget([n.notification_id])
            log.info("stored copy of an erased educator's mail deleted", notification_id=n.notification_id)

    async def _finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        """Record the outcome together with the others arriving meanwhile; True if the token still held."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outcomes.append((claimed, outcome, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="mail-outcomes")
        return await asyncio.shield(future)  # a cancelled sender does not cancel the others' write

    async def _flush(self) -> None:
        """Write the waiting outcomes, a batch per transaction, until none waits.

        A batch is written through `OutcomeRecorder` (retried through any outage). Should it fail
        otherwise (a bug, a row the database refuses), its outcomes are written one by one, so one bad
        row never keeps the others' outcome from being recorded."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            items = [(claimed, outcome) for claimed, outcome, _ in batch]
            results: Sequence[bool | BaseException]
            try:
                results = await self._write(items)
            except Exception as exc:
                log.error("outcome batch not recorded, recording one by one", error=scrub_addresses(repr(exc)))
                results = [await self._write_alone(item) for item in items]
            for (_, _, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _write_alone(self, item: Outcome) -> bool | BaseException:
        try:
            [finished] = await self._write([item])
        except Exception as exc:
            return exc
        return finished

    async def _write(self, items: list[Outcome]) -> list[bool]:
        key = items[0][1].notification_id if len(items) == 1 else f"{len(items)} outcomes"
        return await self.recorder.write(lambda: self._record(items), queue="mail", key=key)

    async def _record(self, items: list[Outcome]) -> list[bool]:
        """One transaction: the outcomes; a certificate's issued mail that is done lets its held mails go.

        The educators of issued mails are locked first (sorted), as `record_event` locks them: a
        revocation recorded meanwhile is either seen held here or sees the issued mail done."""
        async with self._uow.transaction() as repo:
            issued = sorted({o.educator_id for _, o in items if o.kind == "certificate_issued"})
            if issued:
                await repo.contacts.lock_many(issued)
            finished = await repo.mail.finish_many(items)
            done = [
                o.certificate_id
                for (_, o), ok in zip(items, finished, strict=True)
                if ok and o.final and o.kind == "certificate_issued" and o.certificate_id
            ]
            if done:
                for certificate_id in sorted(await repo.notifications.with_held(done)):
                    await release_held(repo, certificate_id)
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
        observer: SendingObserver | None = None,
        recorder: OutcomeRecorder | None = None,
        keep_every_seconds: float | None = None,
    ) -> None:
        self._uow = uow
        self._poster = poster
        self._targets = targets
        self._dead_letters = dead_letters
        self._schedule = schedule
        self._lease = lease_seconds
        self._keep_every = keep_every_seconds or lease_seconds / 3
        self._observer = observer or Unobserved()
        self.recorder = recorder or OutcomeRecorder()
        """Shared by all workers of this process: none claims while an outcome waits for the database."""
        self.delivered = 0
        self.dead = 0

    async def deliver_next(self) -> int:
        """Deliver one due delivery; returns 1 if there was one, else 0 (the caller idles)."""
        await self.recorder.settled()
        async with self._uow.transaction() as repo:
            claimed = await repo.deliveries.claim(self._lease)
        if claimed is None:
            return 0

        async def extend() -> None:
            async with self._uow.transaction() as repo:
                await repo.deliveries.extend(claimed, self._lease)

        async with keep_leases(extend, self._keep_every):
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
                self._observer.webhook_failed()
                await self._give_up(d, result)
                return
        else:
            result = await self._poster.post(target, d.secret, d.delivery_id, d.body)
        if result.ok:
            await self._record(d, lambda repo: repo.deliveries.delivered(d, result.status_code))
            self._observer.webhook_sent()
            self.delivered += 1
            log.info("webhook delivered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)
            return
        self._observer.webhook_failed()
        decision = self._schedule.after_failure(d.attempts)
        if not isinstance(decision, GiveUp):
            after = decision.after_seconds
            await self._record(d, lambda repo: repo.deliveries.retry(d, result.status_code, result.error, after))
            log.info(
                "webhook failed, will retry",
                delivery_id=d.delivery_id,
                webhook_id=d.webhook_id,
                attempts=d.attempts,
                delay=round(after, 3),
                error=result.error,
            )
            return
        await self._give_up(d, result)

    async def _give_up(self, d: ClaimedDelivery, result: DeliveryResult) -> None:
        await self._dead_letters.webhook_failed(d, result.error or "failed")
        await self._record(d, lambda repo: repo.deliveries.dead(d, result.status_code, result.error))
        self.dead += 1
        log.warning("webhook dead-lettered", delivery_id=d.delivery_id, webhook_id=d.webhook_id, attempts=d.attempts)

    async def _record(self, d: ClaimedDelivery, change: Callable[[Repositories], Awaitable[bool]]) -> bool:
        """One outcome in one transaction, waiting out a database outage (`OutcomeRecorder`)."""

        async def write() -> bool:
            async with self._uow.transaction() as repo:
                return await change(repo)

        return await self.recorder.write(write, queue="webhooks", key=d.delivery_id)
