"""The set-based SQL of `store.py` / `store_reads.py` against the pure rules of `domain/`.

Generated event sequences — re-registrations (ties included), retakes, completions before the
registration, certificates issued more than once, revoked (even before their issuance),
recognitions, other programmes, duplicate ids; and the v1.1 facts: role changes (before and after
the registration), suspensions and reinstatements (ties), sessions published twice with different
data, attendances of unknown sessions, practice reports, re-evaluations, credit transfer requests
and changing decisions — are projected twice: into PostgreSQL, shuffled
and in random batches, and into the in-memory `ProjectionState`, in generation order one by one.
Every table and every report must agree, which also shows the rules do not depend on order.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
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
from services.analytics.tests.helpers import (
    AI_COURSES,
    attended,
    completed,
    evaluated,
    issued,
    practice,
    recognized,
    registered,
    reinstated,
    revoked,
    role_changed,
    session_held,
    suspended,
    transfer_decided,
    transfer_requested,
)
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
    homes = [rng.choice(INSTITUTIONS) for _ in range(rng.randint(8, 30))]
    for n, inst in enumerate(homes):
        edu = f"{ref}-e{n}"
        at = rng.choice(times)
        for _ in range(rng.choice((0, 1, 1, 1, 2, 3))):  # never, once, or again (maybe elsewhere, same time)
            at = rng.choice((at, rng.choice(times)))
            where = rng.choice((inst, inst, rng.choice(INSTITUTIONS)))
            role, language = rng.choice(("educator", "master_teacher")), rng.choice(("mn", "mn", "en", "ru"))
            events.append(registered(edu, where, at=at, role=role, language=language))
        for course in (*AI_COURSES, "other-course"):
            for _ in range(rng.choice((0, 1, 1, 2, 3))):  # retakes, any score
                where = rng.choice((inst, inst, rng.choice(INSTITUTIONS)))
                score, course_language = float(rng.randint(0, 100)), rng.choice((None, "mn", "en", "ru"))
                when = rng.choice(times)
                events.append(completed(edu, where, course, at=when, score=score, language=course_language))
        for c in range(rng.choice((0, 0, 1, 2))):
            cert, programme = f"{ref}-c{n}-{c}", rng.choice((AI_PROGRAMME_ID, AI_PROGRAMME_ID, "other-programme"))
            for _ in range(rng.choice((0, 1, 1, 2))):  # 0: only a revocation is known
                events.append(issued(cert, edu, inst, at=rng.choice(times), programme_id=programme))
            for _ in range(rng.choice((0, 0, 1, 2))):
                events.append(revoked(cert, edu, inst, at=rng.choice(times)))
            if rng.random() < 0.3:
                events.append(recognized(f"{ref}-r{n}-{c}", cert, edu, inst))
    events += v11_events(rng, ref, times, homes)
    events += rng.sample(events, k=len(events) // 5)  # the same CloudEvent ids again
    return events


def v11_events(rng: random.Random, ref: str, times: list[str], homes: list[str]) -> list[CloudEvent[Any]]:
    """Certificate events name the certificate's own educator and institution, as the platform does."""
    days = [f"2025-0{m}-{d:02d}" for m in (4, 5, 6) for d in (1, 15)]
    regions, modes, langs = ("Ulaanbaatar", "Darkhan", "Erdenet"), ("online", "face_to_face", "hybrid"), ("mn", "en")
    events: list[CloudEvent[Any]] = []
    session_ids: list[str] = []
    for n, inst in enumerate(homes):
        edu = f"{ref}-e{n}"
        for _ in range(rng.choice((0, 0, 1, 2))):
            role = rng.choice(("educator", "master_teacher", "master_teacher"))
            events.append(role_changed(edu, inst, role, at=rng.choice(times)))
        for c in range(2):
            cert = f"{ref}-c{n}-{c}"
            for _ in range(rng.choice((0, 0, 1, 2))):
                change = rng.choice((suspended, reinstated))
                events.append(change(cert, edu, inst, at=rng.choice(times)))
            if rng.random() < 0.3:
                req = f"{ref}-q{n}-{c}"
                for _ in range(rng.choice((1, 1, 2))):
                    events.append(
                        transfer_requested(req, edu, inst, receiving=rng.choice(INSTITUTIONS), at=rng.choice(times))
                    )
                for _ in range(rng.choice((0, 1, 1, 2))):
                    decision = rng.choice(("accepted", "rejected"))
                    events.append(
                        transfer_decided(
                            req,
                            edu,
                            inst,
                            decision,
                            receiving=rng.choice(INSTITUTIONS[:2]),
                            credits=rng.choice((None, 3, 4.5, 6)) if decision == "accepted" else None,
                            at=rng.choice(times),
                        )
                    )
        for k in range(rng.choice((0, 0, 1, 2))):
            session = f"{ref}-s{n}-{k}"
            session_ids.append(session)
            for _ in range(rng.choice((1, 1, 2))):  # published again, maybe with other data
                events.append(
                    session_held(
                        session,
                        edu,
                        inst,
                        region=rng.choice(regions),
                        mode=rng.choice(modes),
                        on=rng.choice(days),
                        language=rng.choice(langs),
                    )
                )
        for _ in range(rng.choice((0, 1, 2))):
            events.append(practice(edu, inst, rng.random() < 0.6, on=rng.choice(days)))
        for _ in range(rng.choice((0, 1, 2, 3))):
            course = rng.choice(AI_COURSES[:2])
            events.append(
                evaluated(
                    edu,
                    inst,
                    course,
                    content=rng.randint(1, 5),
                    usefulness=rng.randint(2, 5),
                    language=rng.choice(langs),
                    time=rng.choice(times),
                )
            )
    session_ids.append(f"{ref}-never-held")
    for n in range(len(homes)):
        edu = f"{ref}-e{n}"
        for session in rng.sample(session_ids, k=min(len(session_ids), rng.choice((0, 1, 2, 3)))):
            events.append(attended(session, edu, rng.choice(INSTITUTIONS)))
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
        courses = {(r[0], r[1]): (r[2], r[3]) for r in await conn.fetch("SELECT * FROM educator_courses")}
        counts = Counter({(r[0], r[1], r[2]): r[3] for r in await conn.fetch("SELECT * FROM course_completion_counts")})
        certificates = {
            r["certificate_id"]: tuple(r[k] for k in r.keys() if k != "certificate_id")
            for r in await conn.fetch("SELECT * FROM certificates")
        }
        recognitions = {
            r["recognition_id"]: (r["certificate_id"], r["educator_id"], r["credits"], r["month"])
            for r in await conn.fetch("SELECT * FROM credit_recognitions")
        }
        v11 = {
            "role_changes": {tuple(r) for r in await conn.fetch("SELECT * FROM role_changes")},
            "status_changes": {tuple(r) for r in await conn.fetch("SELECT * FROM certificate_status_changes")},
            "sessions": {r[0]: tuple(r) for r in await conn.fetch("SELECT * FROM training_sessions")},
            "attendances": {tuple(r) for r in await conn.fetch("SELECT * FROM session_attendance")},
            "practice_reports": {tuple(r) for r in await conn.fetch("SELECT * FROM practice_reports")},
            "evaluations": {(r[0], r[1]): tuple(r) for r in await conn.fetch("SELECT * FROM course_evaluations")},
            "transfer_requests": {r[0]: tuple(r) for r in await conn.fetch("SELECT * FROM credit_transfer_requests")},
            "transfer_decisions": {r[0]: tuple(r) for r in await conn.fetch("SELECT * FROM credit_transfer_decisions")},
        }
    return v11 | {
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
                e.current_role,
                e.attended,
                e.integrates_ai,
                e.language,
            )
            for k, e in state.educators.items()
        },
        "courses": {
            (e, c): (at, state.first_completion_languages.get((e, c)))
            for e, by_course in state.first_completions.items()
            for c, at in by_course.items()
        },
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
                c.suspended,
            )
            for k, c in state.certificates.items()
        },
        "recognitions": {
            k: (r.certificate_id, r.educator_id, r.credits, r.month) for k, r in state.recognitions.items()
        },
        "role_changes": {(e, at, role) for e, changes in state.role_changes.items() for at, role in changes},
        "status_changes": {(c, at, s) for c, changes in state.status_changes.items() for at, s in changes},
        "sessions": {k: tuple(v) for k, v in state.sessions.items()},
        "attendances": set(state.attendances),
        "practice_reports": {(e, on, ai) for e, reports in state.practice_reports.items() for on, ai in reports},
        "evaluations": {
            (v.educator_id, v.course_id): (
                v.educator_id,
                v.course_id,
                v.institution,
                v.language,
                v.content_rating,
                v.usefulness_rating,
                v.evaluated_at,
                v.event_id,
            )
            for v in state.evaluations.values()
        },
        "transfer_requests": {k: tuple(v) for k, v in state.transfer_requests.items()},
        "transfer_decisions": {
            k: (
                v.request_id,
                v.educator_id,
                v.institution,
                v.receiving_institution,
                v.decision,
                v.credits,
                v.decided_at,
            )
            for k, v in state.transfer_decisions.items()
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
    cascade = bare(await reports.cascade())
    out["cascade"] = cascade
    for row in cascade["master_teachers"]:
        out[f"cascade {row['educator_id']}"] = bare(await reports.cascade_of(row["educator_id"]))
    for name in ("recognition", "practice", "feedback"):
        out[name] = bare(await getattr(reports, name)())
    for as_of in (date(2025, 3, 31), date(2025, 5, 1), date(2025, 6, 30), date(2025, 9, 14), date(2026, 1, 1)):
        out[f"report {as_of}"] = bare(await reports.dated_report(as_of))
    return out


@pytest.mark.parametrize("seed", range(8))
async def test_sql_projection_equals_the_pure_rules(postgres_url: str, seed: int) -> None:
    rng = random.Random(seed)
    events = [ProjectionEvent(e.id, e.data, e.time) for e in generated(rng, f"s{seed}")]
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
        assert in_memory["sessions"] and in_memory["attendances"] and in_memory["evaluations"]
        assert in_memory["transfer_decisions"] and in_memory["status_changes"] and in_memory["role_changes"]
        sql_reports = await reports_of(Reports(PgProjectionReader(lambda: pool), {}, RULES))
        pure_reports = await reports_of(Reports(fake, {}, RULES))
        for name in pure_reports:
            assert sql_reports[name] == pure_reports[name], f"seed {seed}: {name} differs"
    finally:
        await pool.close()
