"""Micro-batching: concurrent calls of one operation share one run (one transaction, one statement).

Registration's cost is round trips, not work: a command alone takes BEGIN, insert, two outbox
inserts, COMMIT and the pool's reset, each a wait on PostgreSQL. Commands that arrive while others
are being stored are collected and stored together once a runner is free, so under load a batch
grows by itself (no timer: a lone command is never held back waiting for company).

A batch fails as a whole (its transaction rolls back). Its callers then get None and run their
command alone, so a bad command gets its own specific error and does not fail the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from iioe.runtime.logging import get_logger

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """Runs `run` on the items submitted meanwhile: at most `max_size` per batch, `max_running` at once."""

    def __init__(
        self, run: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, name: str, max_size: int, max_running: int
    ) -> None:
        if max_size < 1 or max_running < 1:
            raise ValueError("max_size and max_running must be at least 1")
        self._run = run
        self._name = name
        self._max_size = max_size
        self._max_running = max_running
        self._pending: deque[tuple[T, asyncio.Future[R | None]]] = deque()
        self._runners: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly: these are the strong refs
        self._running = 0
        """Runners not yet past their last look at `_pending` (counted down there, not when the task ends,
        so a submit never finds every runner finished but still counted, leaving its item behind)."""
        self.batches = 0
        """Batches run so far (failed ones included)."""
        self.failed = 0
        """Batches that failed, whose callers ran alone."""

    async def submit(self, item: T) -> R | None:
        """`run`'s result for `item`, or None when its batch failed: then run it alone."""
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running < self._max_running:
            self._running += 1
            runner = asyncio.create_task(self._drain(), name=f"{self._name}-batch")
            self._runners.add(runner)
            runner.add_done_callback(self._runners.discard)
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch: list[tuple[T, asyncio.Future[R | None]]] = []
                while self._pending and len(batch) < self._max_size:
                    item, future = self._pending.popleft()
                    if not future.done():  # its caller gave up (cancelled)
                        batch.append((item, future))
                if batch:
                    await self._run_batch(batch)
        finally:
            self._running -= 1

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R | None]]]) -> None:
        self.batches += 1
        results: Sequence[R | None]
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except Exception as exc:
            self.failed += 1
            log.warning(f"{self._name} batch failed, each one runs alone", size=len(batch), error=repr(exc))
            results = [None] * len(batch)
        except BaseException:  # cancelled (shutdown): the callers run alone, or are cancelled too
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
