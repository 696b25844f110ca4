"""Long-lived tasks of a service (relay, consumers, loops) are restarted when they die; one that keeps dying
fails liveness, so an orchestrator restarts the process. No servers needed: the tasks here are plain."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from iioe.runtime import service as service_module
from iioe.runtime.service import FAILING_AFTER, ServiceRuntime
from iioe.runtime.settings import ServiceSettings
from tests.support.helpers import eventually


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ServiceRuntime:
    monkeypatch.setattr(service_module, "RESTART_INITIAL_SECONDS", 0.01)
    monkeypatch.setattr(service_module, "RESTART_MAX_SECONDS", 0.02)
    return ServiceRuntime(ServiceSettings(service_name="supervised"), tmp_path)


async def stop(runtime: ServiceRuntime) -> None:
    for task in runtime._tasks:
        task.cancel()
    await asyncio.gather(*runtime._tasks, return_exceptions=True)


async def test_a_task_that_dies_is_started_again_and_the_process_stays_live(runtime: ServiceRuntime) -> None:
    runs: list[int] = []
    working = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise ConnectionResetError("the database went away")
        working.set()
        await asyncio.Event().wait()  # then runs until cancelled

    runtime._spawn(flaky, "flaky")
    try:
        await asyncio.wait_for(working.wait(), timeout=5)
        assert len(runs) == 3
        assert runtime.task_failures["flaky"] == 2
        assert runtime.liveness() == {"status": "ok", "stopped_tasks": []}
    finally:
        await stop(runtime)


async def test_a_task_that_keeps_dying_fails_liveness(runtime: ServiceRuntime) -> None:
    async def broken() -> None:
        raise RuntimeError("always")

    async def returns_early() -> None:
        return None

    runtime._spawn(broken, "broken")
    runtime._spawn(returns_early, "returns-early")
    try:

        async def failing() -> bool:
            return runtime.liveness()["status"] == "failed"

        await eventually(failing, timeout=5, what="liveness to fail")
        assert runtime.task_failures["broken"] >= FAILING_AFTER
        await eventually(
            lambda: asyncio.sleep(0, runtime.task_failures.get("returns-early", 0) >= FAILING_AFTER),
            timeout=5,
            what="a task that returns to count as dying",
        )
        assert set(runtime.liveness()["stopped_tasks"]) == {"broken", "returns-early"}
    finally:
        await stop(runtime)


async def test_a_task_that_recovers_after_dying_repeatedly_is_live_again(runtime: ServiceRuntime) -> None:
    deaths = 0
    recovered = asyncio.Event()

    async def dies_then_runs() -> None:
        nonlocal deaths
        if deaths < FAILING_AFTER:
            deaths += 1
            raise ConnectionResetError("the database went away")
        recovered.set()
        await asyncio.Event().wait()

    runtime._spawn(dies_then_runs, "dies-then-runs")
    try:
        await asyncio.wait_for(recovered.wait(), timeout=5)
        assert runtime.task_failures["dies-then-runs"] == FAILING_AFTER

        async def live() -> bool:
            return runtime.liveness()["status"] == "ok"

        await eventually(live, timeout=5, what="liveness to recover once the task keeps running")
    finally:
        await stop(runtime)
