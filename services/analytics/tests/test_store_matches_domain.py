"""The set-based SQL of `store.py` / `store_reads.py` against the pure rules of `domain/`.

Generated event sequences — re-registrations (ties included), retakes, completions before the
registration, certificates issued more than once, revoked (even before their issuance),
recognitions, other programmes, duplicate ids — are projected twice: into PostgreSQL, shuffled
and in random batches, and into the in-memory `ProjectionState`, in generation order one by one.
Every table and every report must agree, which also shows the rules do not depend on order.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from iioe.envelope import CloudEvent
from iioe.runtime.db import setup_database
from services.analytics.domain import ProjectionEvent, ProjectionRules, ProjectionState
from services.analytics.main import MIGRATIONS
from services.analytics.reports import Reports
from services.analytics.settings import AI_PROGRAMME_ID
from services.analytics.store import PgProjectionUnitOfWork
from services.analytics.store_reads import PgProjectionReader
from services.analytics.tests.fakes import FakeUnitOfWork
from services.analytics.tests.helpers import AI_COURSES, completed, issued, recognized, registered, revoked
from services.analytics.usecases import Projector
from tests.support.helpers import create_database, unique_ref

pytestmark = pytest.mark.integration

RULES = ProjectionRules(AI_PROGRAMME_ID, AI_COURSES, "Asia/Ulaanbaatar")
INSTITUTIONS = ("must", "num", "a-b", "ab", "x1")  # "a-b" < "ab" in code-point order, not in every locale


def timestamps(rng: random.Random) -> list[str]:
    """A small pool (so ties happen), many near a month's end in Ulaanbaatar (UTC+8)."""
    pool = []
    for _ in range(24):
        day = datetime(2025, rng.randint(1, 11), 1, tzinfo=UTC) + timedelta(days=rng.choice((-1, 0, 14)))
        pool.append((day + timedelta(hours=rng.choice((3, 15, 16, 17, 23)))).isoformat())
    return pool


def generated(rng: random.Random, ref: str) -> list[CloudEvent[Any]]:
    times = timestamps(rng)
    events: list[CloudEvent[Any]] = []
    for n in range(rng.randint(8, 30)):
        edu, inst = f"{ref}-e{n}", rng.choice(INSTITUTIONS)
        at = rng.choice(times)
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):  # never, once, or again (maybe elsewhere, same time)
            at = rng.choice((at, rng.choice(times)))
            where = rng.choice((inst, inst, rng.choice(INSTITUTIONS)))
            events.append(registered(edu, where, at=at, role=rng.choice(("educator", "master_teacher"))))
        for course in (*AI_COURSES, "other-course"):
            for _ in range(rng.choice((0, 1, 1, 2, 3))):  # retakes, any score
                where = rng.choice((inst, inst, rng.choice(INSTITUTIONS)))
                events.append(completed(edu, where, course, at=rng.choice(times), score=float(rng.randint(0, 100))))
        for c in range(rng.choice((0, 0, 1, 2))):
            cert, programme = f"{ref}-c{n}-{c}", rng.choice((AI_PROGRAMME_ID, AI_PROGRAMME_ID, "other-programme"))
            for _ in range(rng.choice((0, 1, 1, 2))):  # 0: only a revocation is known
                events.append(issued(cert, edu, inst, at=rng.choice(times), programme_id=programme))
            for _ in range(rng.choice((0, 0, 1, 2))):
                events.append(revoked(cert, edu, inst, at=rng.choice(times)))
            if rng.random() < 0.3:
                events.append(recognized(f"{ref}-r{n}-{c}", cert, edu, inst))
    events += rng.sample(events, k=len(events) // 5)  # the same CloudEvent ids again
    return events


@asynccontextmanager
async def in_transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


async def tables(pool: asyncpg.Pool) -> dict[str, Any]:
    async with pool.acquire() as conn:
        educators = {
            r["educator_id"]: tuple(r[k] for k in r.keys() if k != "educator_id")
            for r in await conn.fetch("SELECT * FROM educators")
        }
        courses = {(r[0], r[1]): r[2] for r in await conn.fetch("SELECT * FROM educator_courses")}
        counts = Counter({(r[0], r[1], r[2]): r[3] for r in await conn.fetch("SELECT * FROM course_completion_counts")})
        certificates = {
            r["certificate_id"]: tuple(r[k] for k in r.keys() if k != "certificate_id")
            for r in await conn.fetch("SELECT * FROM certificates")
        }
        recognitions = {
            r["recognition_id"]: (r["certificate_id"], r["educator_id"], r["credits"], r["month"])
            for r in await conn.fetch("SELECT * FROM credit_recognitions")
        }
    return {
        "educators": educators,
        "courses": courses,
        "counts": counts,
        "certificates": certificates,
        "recognitions": recognitions,
    }


def state_tables(state: ProjectionState) -> dict[str, Any]:
    return {
        "educators": {
            k: (
                e.institution,
                e.role,
                e.registered_at,
                e.registered_month,
                e.started,
                e.programme_courses_done,
                e.programme_completed_at,
                e.programme_month,
                e.certified,
            )
            for k, e in state.educators.items()
        },
        "courses": {(e, c): at for e, by_course in state.first_completions.items() for c, at in by_course.items()},
        "counts": state.completion_counts,
        "certificates": {
            k: (
                c.educator_id,
                c.institution,
                c.programme_id,
                c.credits,
                c.issued_at,
                c.issued_month,
                c.revoked_at,
                c.revoked_month,
            )
            for k, c in state.certificates.items()
        },
        "recognitions": {
            k: (r.certificate_id, r.educator_id, r.credits, r.month) for k, r in state.recognitions.items()
        },
    }


async def reports_of(reports: Reports) -> dict[str, Any]:
    def bare(model: Any) -> Any:
        return model.model_dump(exclude={"generated_at"})

    summary = bare(await reports.summary())
    months = [m["month"] for m in bare(await reports.timeseries())["months"]]
    out = {"summary": summary, "timeseries": bare(await reports.timeseries())}
    for code in INSTITUTIONS:
        out[f"institution {code}"] = bare(await reports.institution(code))
        out[f"timeseries {code}"] = bare(await reports.timeseries(code))
    for month in months:
        out[f"rankings {month}"] = bare(await reports.rankings(month))
    return out


@pytest.mark.parametrize("seed", range(8))
async def test_sql_projection_equals_the_pure_rules(postgres_url: str, seed: int) -> None:
    rng = random.Random(seed)
    events = [ProjectionEvent(e.id, e.data) for e in generated(rng, f"s{seed}")]
    assert len(events) > 50

    fake = FakeUnitOfWork(RULES)
    pure = Projector(fake)
    for event in events:
        await pure.project(event)

    url = await create_database(postgres_url, unique_ref("eq_"))
    pool = await setup_database(url, "analytics", MIGRATIONS, max_size=2)
    try:
        sql = Projector(PgProjectionUnitOfWork(lambda: in_transaction(pool), RULES))
        shuffled = rng.sample(events, k=len(events))
        while shuffled:
            size = rng.choice((1, 2, 5, 17, 60))
            batch, shuffled = shuffled[:size], shuffled[size:]
            await (sql.project(batch[0]) if size == 1 else sql.project_batch(batch))
        assert (sql.applied, sql.duplicates) == (pure.applied, pure.duplicates)

        in_sql, in_memory = await tables(pool), state_tables(fake.state)
        for table in in_memory:
            assert in_sql[table] == in_memory[table], f"seed {seed}: table {table} differs"
        sql_reports = await reports_of(Reports(PgProjectionReader(lambda: pool), {}, RULES))
        pure_reports = await reports_of(Reports(fake, {}, RULES))
        for name in pure_reports:
            assert sql_reports[name] == pure_reports[name], f"seed {seed}: {name} differs"
    finally:
        await pool.close()
