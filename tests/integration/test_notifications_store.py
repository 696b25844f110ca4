"""The notifications PostgreSQL adapter's v1.1 queries on a real database, through the same use cases
the unit tests run on the fake: digest facts, held certificate mails, erasure of a claimed send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import asyncpg
import pytest

from iioe.runtime.db import setup_database
from services.notifications.batches import BatchUseCases
from services.notifications.domain import Contact, RetrySchedule, Session, digest_notification_id
from services.notifications.main import MIGRATIONS
from services.notifications.sending import MailDelivery
from services.notifications.store import PostgresUnitOfWork
from services.notifications.tests.fakes import FakeComposer, FakeMailSender
from services.notifications.tests.test_programme import revoked
from services.notifications.tests.test_usecases import T0, issued, registered
from services.notifications.usecases import Attended, ContactReceived, NotificationUseCases

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, "notifications", MIGRATIONS, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


def usecases(pool: asyncpg.Pool) -> NotificationUseCases:
    return NotificationUseCases(PostgresUnitOfWork(lambda: pool), certification_url="http://c", contact_wait_seconds=60)


async def status(pool: asyncpg.Pool, notification_id: str) -> str:
    found = await pool.fetchval("SELECT status FROM notifications WHERE notification_id = $1", notification_id)
    assert isinstance(found, str)
    return found


async def contact(uc: NotificationUseCases, educator_id: str) -> None:
    await uc.apply_contact(ContactReceived(Contact(educator_id, "must", "N", f"{educator_id}@x.mn", "en"), T0))


async def test_digest_facts_and_one_digest_per_month(pool: asyncpg.Pool) -> None:
    uc = usecases(pool)
    await contact(uc, "mt-1")
    january = Session("sess-1", "must", "mt-1", "Orkhon", "online", date(2026, 1, 10), "mn")
    february = Session("sess-2", "must", "mt-1", "Orkhon", "online", date(2026, 2, 3), "mn")
    await uc.record_session("src", "ev-1", january)
    await uc.record_session("src", "ev-2", february)
    for trainee, session in (("tr-1", "sess-1"), ("tr-2", "sess-1"), ("tr-3", "sess-2")):
        await uc.record_attendance(Attended("src", f"ev-{trainee}", session, trainee, "num"))
    await uc.record_completion("tr-1", "genai-fundamentals")
    await uc.record_completion("tr-1", "genai-fundamentals")
    await uc.record_event(issued("tr-2"))

    now = datetime(2026, 2, 1, 1, tzinfo=UTC)
    assert await uc.schedule_digests(now) == 1
    assert await uc.schedule_digests(now) == 0
    context = await pool.fetchval(
        "SELECT context FROM notifications WHERE notification_id = $1", digest_notification_id("mt-1", "2026-01")
    )
    assert {
        k: context[k] for k in ("trainees", "new_trainees", "sessions", "trainees_completing", "trainees_certified")
    } == {
        "trainees": 2,
        "new_trainees": 2,
        "sessions": 1,
        "trainees_completing": 1,
        "trainees_certified": 1,
    }
    assert await uc.schedule_digests(datetime(2026, 3, 1, tzinfo=UTC)) == 1


async def test_a_held_revocation_is_released_by_the_sent_issued_mail(pool: asyncpg.Pool) -> None:
    uow = PostgresUnitOfWork(lambda: pool)
    uc = usecases(pool)
    sender = FakeMailSender()
    mail = MailDelivery(
        uow, sender, FakeComposer(), RetrySchedule(1, 1, 3), mail_from="noreply@x.example", lease_seconds=60
    )
    await contact(uc, "edu-h")
    revocation = await uc.record_event(revoked("edu-h"))
    assert await status(pool, revocation.notification_id) == "held"
    await uc.record_event(issued("edu-h"))
    assert await mail.send_due() == 1
    assert await status(pool, revocation.notification_id) == "pending"
    assert await mail.send_due() == 1
    assert [str(m["Subject"]).split(" (")[0] for m in sender.sent] == ["certificate_issued", "certificate_revoked"]


async def test_erasure_stops_a_claimed_send_and_forgets_the_address(pool: asyncpg.Pool) -> None:
    uow = PostgresUnitOfWork(lambda: pool)
    uc = usecases(pool)
    await contact(uc, "edu-x")
    recorded = await uc.record_event(issued("edu-x"))
    async with uow.transaction() as repo:
        [claimed] = await repo.mail.claim(10, 60.0)
    assert await uc.erase_educator("edu-x", T0) == 1
    assert await uc.erase_educator("edu-x", T0) == 0
    async with uow.transaction() as repo:
        assert not await repo.mail.finish(claimed, claimed.notification.sent("edu-x@x.mn"))
    row = await pool.fetchrow(
        "SELECT status, recipient, last_error FROM notifications WHERE notification_id = $1",
        recipient_id := recorded.notification_id,
    )
    assert row is not None and dict(row) == {"status": "expired", "recipient": None, "last_error": "educator erased"}
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0 and recipient_id
    await contact(uc, "edu-x")
    assert await pool.fetchval("SELECT count(*) FROM contacts") == 0


async def test_the_batch_paths_on_postgresql(pool: asyncpg.Pool) -> None:
    """Issue #11's set-wise statements: inbox claim, contacts, inserts, held mails, outcomes of a batch."""
    uow = PostgresUnitOfWork(lambda: pool)
    batch = BatchUseCases(uow, certification_url="http://c")
    people = [ContactReceived(Contact(f"b-{n}", "must", "N", f"b-{n}@x.mn", "en"), T0) for n in range(4)]
    await usecases(pool).erase_educator("b-3", T0)
    assert await batch.apply_contacts(people[:2]) == 0
    events = [registered("b-0"), issued("b-1"), revoked("b-1"), registered("b-2"), registered("b-3")]
    inserted = await batch.record_events([*events, events[0]])
    assert sorted(str(n.status) for n in inserted) == ["awaiting_contact", "held", "pending", "pending"]
    assert await batch.record_events(events) == []  # the inbox remembers the batch
    assert await batch.apply_contacts(people[2:]) == 1  # b-2's welcome mail waited for its address
    context = await pool.fetchval("SELECT context FROM notifications WHERE kind = 'certificate_issued'")
    assert context["certificate_id"] == "cert-b-1"  # jsonb, as `add` stores it

    mail = MailDelivery(
        uow, FakeMailSender(), FakeComposer(), RetrySchedule(1.0, 2.0, 3), mail_from="x@x.mn", lease_seconds=30
    )
    # a stale token: another worker took this row over, so this worker's `sent` must not count
    async with uow.transaction() as repo:
        [stale] = [c for c in await repo.mail.claim(10, 30) if c.notification.educator_id == "b-0"]
    await pool.execute(
        "UPDATE notifications SET status = 'pending', claim_token = NULL, next_attempt_at = now()"
        " WHERE status = 'sending'"
    )
    async with uow.transaction() as repo:
        assert await repo.mail.finish_many([(stale, stale.notification.sent("b-0@x.mn"))]) == [False]
    assert await mail.send_due() == 3
    rows = await pool.fetch("SELECT kind, status FROM notifications WHERE educator_id LIKE 'b-%'")
    by_kind = {r["kind"]: r["status"] for r in rows}
    assert by_kind == {"welcome": "sent", "certificate_issued": "sent", "certificate_revoked": "pending"}
    assert await mail.send_due() == 1  # the revocation, released when the issued mail was recorded sent
