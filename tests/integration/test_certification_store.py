"""The PostgreSQL adapter keeps exactly what the domain decides: the same generated event histories run
through the use cases on the in-memory fake and on real PostgreSQL must leave the same state.

No certification rule is written in SQL any more (best attempt, issuance, revocation and recognition limits
are `domain.py`'s); this test is what keeps it so — a rule creeping back into a query shows up as a
difference on some generated case.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from iioe.events import CourseCompleted, EducatorRegistered
from iioe.runtime.db import setup_database
from services.certification.domain import CertificationError, StatusEntry, certificate_id_for
from services.certification.key_vault import KeyVault
from services.certification.main import MIGRATIONS
from services.certification.ports import UnitOfWork
from services.certification.reference import builtin_catalogue
from services.certification.settings import SOURCE
from services.certification.store import PostgresUnitOfWork
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import (
    Certification,
    MessageOrigin,
    RecognizeCredits,
    ReinstateCertificate,
    RevokeCertificate,
    SuspendCertificate,
)

pytestmark = pytest.mark.integration
CATALOGUE = builtin_catalogue()
COURSES = [c for p in CATALOGUE.programmes for c in p.course_ids if p.id != "lightboard-teaching"]
SCORES = (0, 40, 79, 79.99, 80, 80.5, 95, 100)
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
VAULT = KeyVault(os.urandom(32))


@dataclass(frozen=True)
class Step:
    kind: str  # register | complete | revoke | recognize | suspend | reinstate
    event_id: str
    educator: str
    institution: str = "must"
    course: str = ""
    score: float = 0
    at: datetime = T0
    programme: str = ""
    credits: float | None = None


def history(seed: int) -> list[Step]:
    """A random history of a few educators: early completions, retakes, duplicates, replays, other institutions,
    suspensions, reinstatements, revocations and recognitions."""
    rng = random.Random(seed)
    steps: list[Step] = []
    for n in range(3):
        educator = f"edu-{seed}-{n}"
        courses = rng.sample(COURSES, k=rng.randint(3, len(COURSES)))
        mine = [
            Step(
                "complete",
                f"c-{seed}-{n}-{i}",
                educator,
                institution="num" if rng.random() < 0.05 else "must",
                course=course,
                score=rng.choice(SCORES) if rng.random() < 0.3 else rng.choice((85, 90, 100)),
                at=T0 + timedelta(hours=rng.randint(0, 500)),
            )
            for i, course in enumerate(courses + rng.choices(courses, k=4))
        ]
        if n < 2 or rng.random() < 0.7:  # some never register: their completions stay parked
            mine.insert(rng.randint(0, len(mine)), Step("register", f"r-{seed}-{n}", educator))
        mine += rng.sample(mine, k=3)  # redeliveries: the same event ids again
        for programme in ("ai-in-higher-education", "digital-teaching-essentials"):
            for _ in range(2):
                credits = rng.choice((None, 1, 3, 9))
                mine.append(Step("recognize", "", educator, programme=programme, credits=credits))
                for _ in range(rng.randint(0, 3)):
                    mine.append(Step(rng.choice(("suspend", "reinstate")), "", educator, programme=programme))
                if rng.random() < 0.3:
                    mine.append(Step("revoke", "", educator, programme=programme))
        steps += mine
    return steps


async def play(uow: UnitOfWork, steps: list[Step]) -> list[str]:
    """Run the steps through the use cases; returns the outcome of each (the refusal code, if any)."""
    draws = random.Random(len(steps))  # the same "random" status list indexes on both sides
    service = Certification(uow, CATALOGUE, {"must": {}, "num": {}}, draw_index=draws.randrange)
    outcomes = []
    for seq, step in enumerate(steps):
        try:
            await _apply(service, step, seq)
            outcomes.append("ok")
        except CertificationError as exc:
            outcomes.append(exc.code)
    return outcomes


async def _apply(service: Certification, step: Step, seq: int) -> None:
    if step.kind == "register":
        data = EducatorRegistered(
            educator_id=step.educator, institution="must", language="en", role="educator", registered_at=T0
        )
        await service.on_educator_registered(step.event_id, data)
    elif step.kind == "complete":
        completion = CourseCompleted(
            educator_id=step.educator,
            institution=step.institution,
            course_id=step.course,
            score=float(step.score),
            completed_at=step.at,
        )
        origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "t-progress", "IIOE_EVENTS", seq)
        await service.on_course_completed(step.event_id, completion, origin)
    elif step.kind == "revoke":
        await service.revoke(RevokeCertificate(certificate_id_for(step.educator, step.programme), "test", "ops"))
    elif step.kind == "suspend":
        await service.suspend(SuspendCertificate(certificate_id_for(step.educator, step.programme), None, "ops"))
    elif step.kind == "reinstate":
        await service.reinstate(ReinstateCertificate(certificate_id_for(step.educator, step.programme), "ok", "ops"))
    else:
        certificate_id = certificate_id_for(step.educator, step.programme)
        await service.recognize(RecognizeCredits(certificate_id, "num", "MEd", credits=step.credits))


async def snapshot(uow: UnitOfWork, educators: set[str]) -> dict[str, Any]:
    """What the rules decided, without what legitimately differs (issue times, signatures)."""
    state: dict[str, Any] = {}
    async with uow.transaction() as tx:
        for educator in sorted(educators):
            certificates = await tx.certificates.of_educator(educator)
            recognitions = []
            entries = []
            for certificate in certificates:
                recognitions += await tx.certificates.recognitions_of(certificate.certificate_id)
                entries += await tx.status_lists.entries_of(certificate.certificate_id)
            state[educator] = {
                "registered": await tx.progress.get_educator(educator) is not None,
                "completions": await tx.progress.completions(educator),
                "pending": await tx.progress.count_pending(educator),
                "certificates": sorted(
                    (c.programme_id, c.credits, c.course_ids, c.status, c.last_change and c.last_change.seq)
                    for c in certificates
                ),
                "status_bits": sorted(await _bits(tx, entries)),
                "recognitions": sorted((r.recognition_id, r.credits) for r in recognitions),
            }
    return state


async def _bits(tx: Any, entries: list[StatusEntry]) -> list[tuple[str, str, bool]]:
    """(certificate, purpose, bit) — not the index itself: the database is shared by all seeds, so an index
    drawn earlier may be taken there and not in the fake."""
    out: list[tuple[str, str, bool]] = []
    for entry in entries:
        set_indexes = set(await tx.status_lists.set_indexes(entry.list_id))
        out.append((entry.certificate_id, entry.purpose, entry.index in set_indexes))
    return out


@pytest.fixture
async def pool(database_url: str) -> Any:
    pool = await setup_database(database_url, "certification", MIGRATIONS, max_size=2)
    yield pool
    await pool.close()


async def test_postgres_keeps_exactly_what_the_domain_decides(pool: asyncpg.Pool) -> None:
    for seed in range(12):
        steps = history(seed)
        educators = {s.educator for s in steps}
        fake = FakeUnitOfWork()
        real = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=VAULT)
        before = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM outbox")

        assert await play(real, steps) == await play(fake, steps), f"seed {seed}"
        assert await snapshot(real, educators) == await snapshot(fake, educators), f"seed {seed}"

        staged = await pool.fetch("SELECT event_id, subject FROM outbox WHERE seq > $1", before)
        events = sorted(r["event_id"] for r in staged if not r["subject"].startswith("iioe.dlq."))
        dead_letters = [r for r in staged if r["subject"] == "iioe.dlq.t-progress.institution_mismatch"]
        assert events == sorted(e.event_id for e in fake.state.events), f"seed {seed}"
        assert len(dead_letters) == len(fake.state.dead_letters), f"seed {seed}"


async def test_the_generated_histories_exercise_every_rule() -> None:
    """Guard against a generator that drifted into trivial cases (the comparison above would then prove little)."""
    outcomes: set[str] = set()
    fake = FakeUnitOfWork()
    for seed in range(12):
        outcomes |= set(await play(fake, history(seed)))
    kinds = {type(e.data).__name__ for e in fake.state.events}
    assert {
        "CertificateIssued",
        "CertificateRevoked",
        "CreditRecognized",
        "CertificateSuspended",
        "CertificateReinstated",
    } <= kinds
    assert {
        "ok",
        "certificate_not_found",
        "certificate_revoked",
        "credits_exceed_certificate",
        "certificate_suspended",
        "certificate_not_suspended",
    } <= outcomes
    assert fake.state.dead_letters and fake.state.pending
    attempts = [c.attempts for per in fake.state.completions.values() for c in per.values()]
    assert max(attempts) > 1
