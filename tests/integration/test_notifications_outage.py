"""PostgreSQL stopped after the SMTP relay accepted a mail and before `sent` is written: exactly one mail.

The chaos suite's `postgres-stopped-*` scenarios found the window (the lease expired during the outage
and the row went out again); here it is hit every time: the sender stops the embedded PostgreSQL right
after the relay's 250, for longer than the lease, while a second replica polls the same queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from iioe.runtime.db import setup_database
from iioe_tools.embedded import EmbeddedPostgres
from services.notifications.domain import Contact, RetrySchedule
from services.notifications.mail import SmtpSender
from services.notifications.main import MIGRATIONS
from services.notifications.mime import OutgoingMail
from services.notifications.sending import MailDelivery
from services.notifications.store import PostgresUnitOfWork
from services.notifications.tests.fakes import FakeComposer, smtp_server
from services.notifications.tests.test_usecases import T0, registered
from services.notifications.usecases import ContactReceived, NotificationUseCases
from services.notifications.workers import PollLoop
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration
LEASE = 2.0
OUTAGE = 5.0
"""Longer than the lease: without the fix the replica (or the worker itself) sends the mail again."""


class StopPostgresAfterAcceptance:
    """The relay (shared by both replicas) with the fault: PostgreSQL stops once it has accepted the first
    mail, and starts again `OUTAGE` seconds later (in the background)."""

    def __init__(self, inner: SmtpSender, pg: EmbeddedPostgres) -> None:
        self.inner = inner
        self.pg = pg
        self.outage: asyncio.Task[None] | None = None

    async def send(self, msg: OutgoingMail) -> None:
        await self.inner.send(msg)
        if self.outage is None:
            await asyncio.to_thread(self.pg.stop)
            self.outage = asyncio.create_task(self._restart())

    async def _restart(self) -> None:
        await asyncio.sleep(OUTAGE)  # the outage itself
        await asyncio.to_thread(self.pg.start)


@contextlib.asynccontextmanager
async def running(*loops: PollLoop) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_postgres_stopped_between_smtp_acceptance_and_sent_sends_one_mail(
    own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    pools = [await setup_database(own_postgres.url, "notifications", MIGRATIONS, max_size=3) for _ in range(2)]
    try:
        uow, replica_uow = (PostgresUnitOfWork(lambda p=p: p) for p in pools)  # type: ignore[misc]
        usecases = NotificationUseCases(uow, certification_url="http://c", contact_wait_seconds=60)
        address = "outage@example.mn"
        await usecases.apply_contact(ContactReceived(Contact("edu-outage", "must", "O", address, "en"), T0))
        recorded = await usecases.record_event(registered("edu-outage"))
        schedule = RetrySchedule(base_seconds=0.2, cap_seconds=1.0, max_attempts=10)

        with smtp_server() as (capture, smtp_port):
            smtp = SmtpSender("127.0.0.1", smtp_port, False, None, None, 5.0)
            sender = StopPostgresAfterAcceptance(smtp, own_postgres)
            worker = MailDelivery(
                uow, sender, FakeComposer(), schedule, mail_from="n@iioe.example", lease_seconds=LEASE
            )
            replica = MailDelivery(
                replica_uow, sender, FakeComposer(), schedule, mail_from="n@iioe.example", lease_seconds=LEASE
            )
            async with running(PollLoop("worker", worker.send_due, 0.1), PollLoop("replica", replica.send_due, 0.1)):

                async def recorded_sent() -> bool:
                    return worker.sent + replica.sent > 0

                await eventually(recorded_sent, timeout=60, what="the mail to be recorded sent")
                assert sender.outage is not None, "the mail was never accepted"
                await sender.outage
                await asyncio.sleep(LEASE * 2)  # time for a wrong second claim to happen and be sent
            # either replica may claim the row first: the one that sent it is the one whose write met the outage
            sender_of_mail = worker if worker.sent else replica
            assert sender_of_mail.recorder.retries > 0, "the outage did not hit the recording of the outcome"

        assert len(capture.to(address)) == 1
        assert sorted((worker.sent, replica.sent)) == [0, 1]
        row = await pools[0].fetchrow(
            "SELECT status, attempts, claim_token, sent_at FROM notifications WHERE notification_id = $1",
            recorded.notification_id,
        )
        assert row is not None
        assert (row["status"], row["attempts"], row["claim_token"]) == ("sent", 1, None)
        assert row["sent_at"] is not None
    finally:
        for pool in pools:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await pool.close()
