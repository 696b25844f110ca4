"""The portfolio's PostgreSQL adapter keeps exactly what `portfolio.py` decides: the same generated histories
(entries with corrections, late older versions and duplicates; reports from two sources; other institutions;
records before registration; share, share again, switch off) on the fake and on PostgreSQL read the same."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from iioe.events import EducatorRegistered, PortfolioEntryAdded, PracticeIntegrationReported
from iioe.runtime.db import setup_database
from services.certification.domain import CertificationError
from services.certification.main import MIGRATIONS
from services.certification.portfolio_ports import PortfolioUnitOfWork
from services.certification.portfolio_usecases import Portfolios
from services.certification.ports import UnitOfWork
from services.certification.reference import builtin_catalogue
from services.certification.settings import SOURCE
from services.certification.store import PostgresUnitOfWork
from services.certification.store_portfolio import PostgresPortfolioUnitOfWork
from services.certification.tests.fake_portfolio import FakePortfolioUnitOfWork
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import Certification

pytestmark = pytest.mark.integration
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
SOURCES = ("urn:iioe:partner:must-lms", "urn:iioe:partner:other")


def history(seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    steps: list[tuple[str, dict[str, Any]]] = []
    for n in range(3):
        educator = f"edu-{seed}-{n}"
        mine: list[tuple[str, dict[str, Any]]] = []
        for i in range(rng.randint(2, 8)):
            mine.append(
                (
                    "entry",
                    {
                        "event_id": f"e-{seed}-{n}-{i}",
                        "source": rng.choice(SOURCES),
                        "entry_id": f"entry-{rng.randint(0, 3)}",  # the same entry again: correction or stale
                        "educator_id": educator,
                        "institution": "num" if rng.random() < 0.1 else "must",
                        "title": f"title {i}",
                        "link": f"https://lms.test/{i}" if rng.random() < 0.5 else None,
                        "added_on": date(2025, 4, 1) + timedelta(days=rng.randint(0, 5)),
                    },
                )
            )
        for _ in range(rng.randint(0, 4)):
            mine.append(
                (
                    "report",
                    {
                        "event_id": f"p-{seed}-{n}-{rng.randint(0, 2)}",  # same id: duplicate, or another source
                        "source": rng.choice(SOURCES),
                        "educator_id": educator,
                        "institution": "must",
                        "integrates_ai": rng.random() < 0.5,
                        "reported_on": date(2025, 4, 1) + timedelta(days=rng.randint(0, 3)),
                    },
                )
            )
        mine += rng.sample(mine, k=2)  # redeliveries
        if rng.random() < 0.8:
            mine.insert(rng.randint(0, len(mine)), ("register", {"educator_id": educator}))
        mine += [(rng.choice(("share", "share", "unshare")), {"educator_id": educator}) for _ in range(3)]
        steps += mine
    rng.shuffle(steps)
    return steps


async def play(uow: UnitOfWork, portfolio_uow: PortfolioUnitOfWork, steps: list[tuple[str, dict[str, Any]]]) -> Any:
    clock = itertools.count()
    share_ids = itertools.count()
    certification = Certification(uow, builtin_catalogue(), {"must": {}, "num": {}})
    portfolios = Portfolios(
        portfolio_uow,
        certification,
        clock=lambda: T0 + timedelta(minutes=next(clock)),
        share_ids=lambda: f"share-{steps[0][1]['educator_id']}-{next(share_ids)}",
    )
    outcomes: list[str] = []
    for kind, args in steps:
        try:
            if kind == "register":
                data = EducatorRegistered(
                    educator_id=args["educator_id"],
                    institution="must",
                    language="en",
                    role="educator",
                    registered_at=T0,
                )
                await certification.on_educator_registered(f"reg-{args['educator_id']}", data)
            elif kind == "entry":
                fields = {k: v for k, v in args.items() if k not in ("event_id", "source")}
                entry = PortfolioEntryAdded(kind="reflection", **fields)
                await portfolios.on_event(args["source"], args["event_id"], entry)
            elif kind == "report":
                fields = {k: v for k, v in args.items() if k not in ("event_id", "source")}
                await portfolios.on_event(args["source"], args["event_id"], PracticeIntegrationReported(**fields))
            elif kind == "share":
                share, created = await portfolios.share(args["educator_id"])
                outcomes.append(f"share {share.share_id} {created}")
            else:
                closed = await portfolios.unshare(args["educator_id"])
                outcomes.append(f"unshare {closed.share_id if closed else None}")
        except CertificationError as exc:
            outcomes.append(exc.code)
    snapshot: dict[str, Any] = {"outcomes": outcomes}
    for educator in sorted({args["educator_id"] for _, args in steps}):
        try:
            p = await portfolios.portfolio(educator)
        except CertificationError as exc:
            snapshot[educator] = exc.code
            continue
        snapshot[educator] = {
            "institution": p.institution,
            "registered": p.educator is not None,
            "entries": [asdict(e) for e in p.entries],
            "reports": [{**asdict(r), "received_seq": None} for r in p.reports],
            "integrates_ai": p.integrates_ai,
            "share": asdict(p.share) if p.share else None,
        }
    return snapshot


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, "certification", MIGRATIONS, max_size=2)
    yield pool
    await pool.close()


async def test_postgres_keeps_exactly_what_the_portfolio_rules_decide(pool: asyncpg.Pool) -> None:
    seen: set[str] = set()
    for seed in range(8):
        steps = history(seed)
        fake = FakeUnitOfWork()
        expected = await play(fake, FakePortfolioUnitOfWork(fake), steps)
        actual = await play(
            PostgresUnitOfWork(lambda: pool, source=SOURCE), PostgresPortfolioUnitOfWork(lambda: pool), steps
        )
        assert actual == expected, f"seed {seed}"
        seen |= {" ".join(o.split()[::2]) for o in expected["outcomes"]}
        seen |= {"unregistered" for v in expected.values() if isinstance(v, dict) and not v["registered"]}
    # the histories reach every branch: refusals, new and repeated shares, switch-offs with and without a link
    assert {"institution_mismatch", "share True", "share False", "unshare", "unregistered"} <= seen, seen
