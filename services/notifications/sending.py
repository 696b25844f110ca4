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
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from iioe.runtime.consumer import is_infrastructure_error
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
    Repositories,
    SendingObserver,
    TargetGuard,
    UnitOfWork,
    WebhookPoster,
)
from services.notifications.targets import FORBIDDEN, TargetRefused
from services.notifications.usecases import release_held

log = get_logger(__name__)


T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
RECORD_RETRY_INITIAL_SECONDS = 0.1
RECORD_RETRY_MAX_SECONDS = 2.0


TRANSIENT_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.TransactionRollbackError,  # class 40: serialization failure, deadlock detected
    asyncpg.LockNotAvailableError,  # lock_timeout, e.g. on the educator's lock of a certificate mail
    asyncpg.QueryCanceledError,  # statement_timeout
)
"""Besides the world being down: errors after which the same write can succeed."""


def retryable(exc: BaseException) -> bool:
    """May an outcome write that failed with `exc` be tried again (it changes nothing when it failed)?"""
    return is_infrastructure_error(exc) or isinstance(exc, TRANSIENT_DATABASE_ERRORS)


class Unobserved:
    """The observer of a delivery that nobody watches."""

    def mail_sent(self) -> None: ...

    def mail_failed(self) -> None: ...

    def webhook_sent(self) -> None: ...

    def webhook_failed(self) -> None: ...


class OutcomeRecorder:
    """Writes the outcome of a network call that already happened, whatever the database does meanwhile.

    An infrastructure error (database unreachable, pool closed, connection lost) or a transient one
    (`TRANSIENT_DATABASE_ERRORS`) is retried after `initial_seconds`, doubling up to `max_seconds`,
    until the database answers — never given up,
    because the row stays claimed (its lease renewed by `keep_leases`) and a re-claim would repeat
    the call. Any other error is raised. While a write waits, `settled()` holds the claims of this
    process, so none of its workers takes over a row whose outcome is still on its way.
    """

    def __init__(
        self,
        *,
        initial_seconds: float = RECORD_RETRY_INITIAL_SECONDS,
        max_seconds: float = RECORD_RETRY_MAX_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._initial = initial_seconds
        self._max = max_seconds
        self._sleep = sleep
        self._waiting = 0
        self._settled = asyncio.Event()
        self._settled.set()
        self.retries = 0
        """Writes that failed on the world and were tried again (all time)."""

    @property
    def waiting(self) -> int:
        """Outcomes that met an outage and are not recorded yet."""
        return self._waiting

    async def settled(self) -> None:
        """Returns at once unless an outcome of this process waits for the database; then once none does."""
        await self._settled.wait()

    async def write(self, write: Callable[[], Awaitable[T]], *, queue: str, key: str) -> T:
        delay = self._initial
        failures = 0
        try:
            while True:
                try:
                    result = await write()
                except Exception as exc:
                    if not retryable(exc):
                        raise
                    failures += 1
                    self.retries += 1
                    if failures == 1:
                        self._waiting += 1
                        self._settled.clear()
                        log.warning(
                            "outcome not recorded yet, database unreachable: retrying",
                            queue=queue,
                            key=key,
                            error=scrub_addresses(repr(exc)),
                        )
                    await self._sleep(delay)
                    delay = min(delay * 2, self._max)
                    continue
                if failures:
                    log.info("outcome recorded after the outage", queue=queue, key=key, retries=failures)
                return result
        finally:
            if failures:
                self._waiting -= 1
                if not self._waiting:
                    self._settled.set()


@contextlib.asynccontextmanager
async def keep_leases(extend: Callable[[], Awaitable[object]], every_seconds: float) -> AsyncIterator[None]:
    """Call `extend` every `every_seconds` while the block runs (a failed renewal is retried next time)."""

    async def keep() -> None:
        while True:
            await asyncio.sleep(every_seconds)
            try:
                await extend()
            except Exception as exc:  # the database away: the next beat tries again
                log.debug("lease not renewed", error=scrub_addresses(repr(exc)))

    task = asyncio.create_task(keep(), name="lease-keeper")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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
        observer: SendingObserver | None = None,
        recorder: OutcomeRecorder | None = None,
        keep_every_seconds: float | None = None,
    ) -> None:
        self._uow = uow
        self._sender = sender
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

    async def send_due(self) -> int:
        """Send one batch of due notifications (in parallel, bounded); returns how many were claimed.

        The whole batch's leases are renewed until its last outcome is recorded."""
        await self.recorder.settled()
        async with self._uow.transaction() as repo:
            claimed = await repo.mail.claim(self._batch, self._lease)
        if not claimed:
            return 0
        held = list(claimed)

        async def extend() -> None:
            async with self._uow.transaction() as repo:
                await repo.mail.extend(list(held), self._lease)

        async with keep_leases(extend, self._keep_every):
            await asyncio.gather(*(self._send_bounded(c, held) for c in claimed))
        return len(claimed)

    async def _send_bounded(self, claimed: ClaimedNotification, held: list[ClaimedNotification]) -> None:
        try:
            async with self._slots:
                await self.send(claimed)
        except Exception as exc:  # not the world (that is retried): the lease brings the row back
            log.error(
                "notification send failed unexpectedly",
                notification_id=claimed.notification.notification_id,
                error=scrub_addresses(repr(exc)),
            )
        finally:
            held.remove(claimed)

    async def send(self, claimed: ClaimedNotification) -> None:
        n = claimed.notification
        async with self._uow.transaction() as repo:
            contact = await repo.contacts.get(n.educator_id)
        if contact is None:  # cannot happen for a `pending` row, but never send to nobody
            self._observer.mail_failed()
            await self._finish(claimed, n.fail("no contact details for this educator"))
            return
        language = resolve_language(n.language or contact.language)
        try:
            msg = self._composer.compose(n, contact, language, self._mail_from)
            await self._sender.send(msg)
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

    async def _finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        """Record the outcome, waiting out a database outage (`OutcomeRecorder`)."""
        return await self.recorder.write(
            lambda: self._record(claimed, outcome), queue="mail", key=outcome.notification_id
        )

    async def _record(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        """One transaction: the outcome; a certificate's issued mail that is done lets its held mails go."""
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
