"""Micro-batching: the `Batcher` on its own, then `Registrations` sharing transactions on the in-memory
unit of work (the same use case runs on PostgreSQL in tests/integration/test_registration_batches.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from iioe.commands import RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorRegistered
from services.registration.batching import Batcher
from services.registration.domain import Educator, RegisterEducator
from services.registration.tests.fakes import FakeEducators, FakeTransaction, FakeUnitOfWork
from services.registration.tests.test_handlers import until
from services.registration.usecases import Registrations

SOURCE = "urn:test"


class Doubler:
    """A batch operation that records the batches it ran; optionally waits at `gate`, or fails."""

    def __init__(self, *, gated: bool = False, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.running = 0
        self.most_running = 0
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.fail_on in items:
                raise ValueError(f"{self.fail_on} is poison")
            return [2 * n for n in items]
        finally:
            self.running -= 1


async def test_items_submitted_together_run_as_one_batch() -> None:
    run = Doubler()
    batcher = Batcher(run, name="t", max_size=64, max_running=4)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(10))) == [2 * n for n in range(10)]
    assert run.batches == [list(range(10))]


async def test_a_batch_holds_at_most_max_size_items() -> None:
    run = Doubler()
    batcher = Batcher(run, name="t", max_size=3, max_running=1)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(7))) == [2 * n for n in range(7)]
    assert run.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_at_most_max_running_batches_run_at_once_and_the_rest_wait() -> None:
    run = Doubler(gated=True)
    batcher = Batcher(run, name="t", max_size=1, max_running=2)
    results = asyncio.gather(*(batcher.submit(n) for n in range(5)))
    await until(lambda: run.running == 2, "two batches running")
    for _ in range(10):  # let anything that could start, start
        await asyncio.sleep(0)
    assert run.running == 2 and len(run.batches) == 2
    run.gate.set()
    assert await results == [0, 2, 4, 6, 8]
    assert run.most_running == 2 and sorted(n for b in run.batches for n in b) == [0, 1, 2, 3, 4]


async def test_a_failed_batch_answers_none_to_each_of_its_items_only() -> None:
    run = Doubler(fail_on=3)
    batcher = Batcher(run, name="t", max_size=2, max_running=1)
    assert await asyncio.gather(*(batcher.submit(n) for n in range(6))) == [0, 2, None, None, 8, 10]
    assert (batcher.batches, batcher.failed) == (3, 1)


async def test_an_item_whose_caller_gave_up_is_left_out() -> None:
    run = Doubler(gated=True)
    batcher = Batcher(run, name="t", max_size=64, max_running=1)
    first = asyncio.ensure_future(batcher.submit(0))
    await until(lambda: run.batches, "the first batch running")
    later = [asyncio.ensure_future(batcher.submit(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0)
    later[1].cancel()
    run.gate.set()
    assert await first == 0 and await later[0] == 2 and await later[2] == 6
    assert run.batches == [[0], [1, 3]]


def command(email: str, full_name: str = "Батын Сарнай") -> RegisterEducator:
    return RegisterEducator(
        "must", RegisterEducatorRequest.parse({"full_name": full_name, "email": email, "language": "mn"})
    )


def registrations_on(uow: FakeUnitOfWork, **kw: Any) -> Registrations:
    ids = (f"edu-{n}" for n in itertools.count(1))
    return Registrations(uow, {"must"}, source=SOURCE, new_id=lambda: next(ids), **kw)


async def test_concurrent_registrations_share_one_transaction_with_the_same_answers() -> None:
    uow = FakeUnitOfWork()
    registrations = registrations_on(uow)
    await registrations.register(command("known@must.edu.mn"))
    emails = ["a@must.edu.mn", "b@must.edu.mn", "A@must.edu.mn", "known@must.edu.mn", "c@must.edu.mn"]
    replies = await asyncio.gather(*(registrations.register(command(e)) for e in emails))
    assert [(r.educator_id, r.status) for r in replies] == [
        ("edu-2", "registered"),
        ("edu-3", "registered"),
        ("edu-2", "already_registered"),  # the same e-mail as the first of the batch
        ("edu-1", "already_registered"),
        ("edu-6", "registered"),
    ]
    assert uow.commits == 2  # the first registration, then all five together
    registered = [e.educator_id for e in uow.events_of(EducatorRegistered)]  # type: ignore[attr-defined]
    assert registered == ["edu-1", "edu-2", "edu-3", "edu-6"]
    assert len(uow.events_of(EducatorContact)) == 4


class PoisonedEducators(FakeEducators):
    """Like PostgreSQL with a value it cannot store (a NUL): the statement fails, alone or in a batch."""

    async def add(self, educator: Educator) -> bool:
        if educator.full_name == "Poison":
            raise ValueError("invalid byte sequence")
        return await super().add(educator)


class PoisonedUnitOfWork(FakeUnitOfWork):
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        async with super().transaction() as tx:
            yield FakeTransaction(PoisonedEducators(tx.educators.rows), tx.records, tx.audit, tx.outbox)


async def test_a_bad_command_gets_its_own_error_and_the_others_of_its_batch_are_registered() -> None:
    uow = PoisonedUnitOfWork()
    registrations = registrations_on(uow)
    commands = [command(f"e{n}@must.edu.mn", "Poison" if n == 2 else f"E {n}") for n in range(5)]
    outcomes = await asyncio.gather(*(registrations.register(c) for c in commands), return_exceptions=True)
    assert isinstance(outcomes[2], ValueError)
    assert [o.status for n, o in enumerate(outcomes) if n != 2] == ["registered"] * 4  # type: ignore[union-attr]
    assert registrations.batcher is not None
    assert (registrations.batcher.batches, registrations.batcher.failed) == (1, 1)
    assert len(uow.events_of(EducatorRegistered)) == 4 and uow.commits == 4  # the batch committed nothing


@pytest.mark.parametrize("batch_size", [1, 64])
async def test_with_or_without_batches_a_repeated_registration_answers_the_first_id(batch_size: int) -> None:
    uow = FakeUnitOfWork()
    registrations = registrations_on(uow, batch_size=batch_size)
    first = await registrations.register(command("sarnai@must.edu.mn"))
    again = await asyncio.gather(*(registrations.register(command("SARNAI@must.edu.mn")) for _ in range(3)))
    assert {(r.educator_id, r.status) for r in again} == {(first.educator_id, "already_registered")}
    assert (registrations.batcher is None) == (batch_size == 1)
