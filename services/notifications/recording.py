"""Recording the outcome of a network call that already happened, and keeping the leases of held rows.

Split from `sending.py` (which re-exports these names): both queues' workers use them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import asyncpg

from iioe.runtime.consumer import is_infrastructure_error
from iioe.runtime.logging import get_logger
from services.notifications.domain import scrub_addresses

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
