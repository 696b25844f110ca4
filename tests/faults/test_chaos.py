"""Bounded chaos: each scenario runs a partner burst against the platform (services as OS processes,
real nats-server and PostgreSQL), injects one fault mid-burst, and accounts for every effect.
Lost and duplicated effects must be 0; only poison may be dead-lettered."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from iioe.runtime.nats import connect
from iioe.subjects import EVENTS_STREAM
from services.notifications.tests.fakes import smtp_server
from tests.faults.harness import Burst, Fault, Ledger, Platform, Result, dead_letters, settle

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
EDUCATORS = int(os.environ.get("IIOE_FAULTS_EDUCATORS", "30"))
LONG_OUTAGE_SECONDS = float(os.environ.get("IIOE_FAULTS_LONG_OUTAGE_SECONDS", "90"))
SETTLE_SECONDS = 180.0


async def run_scenario(
    name: str,
    root: Path,
    results: list[Result],
    ledger_dir: Path,
    fault: Fault,
    *,
    replicas: int = 1,
    poison_ratio: float = 0.0,
    nats_url: str | None = None,
    per_second: float = 0,
) -> Result:
    with smtp_server() as (capture, smtp_port):
        platform = Platform(root, smtp_port, replicas=replicas, nats_url=nats_url)
        nc = None
        try:
            await platform.start()
            nc = await connect(platform.nats_url, "faults-partner")
            ledger = Ledger()
            educators = [f"edu-{platform.ref}-{i:03d}" for i in range(EDUCATORS)]
            burst = Burst(nc, ledger, educators, poison_ratio, per_second)
            sending = asyncio.create_task(burst.run())
            notes = await fault(platform, burst)
            await sending
            cleared = time.monotonic()
            lost, duplicated, duplicated_mails, _ = await settle(
                platform, nc, ledger, lambda a: len(capture.to(a)), SETTLE_SECONDS
            )
            recovery = time.monotonic() - cleared
            good_letters, poison_letters = await dead_letters(nc, ledger)
            ledger.write(ledger_dir / f"{name}.json")
            world_failures, pauses, dead_tasks = platform.log_counts()
            result = Result(
                scenario=name,
                events=len(ledger.entries),
                acknowledged=sum(1 for e in ledger.entries if e.acked_at is not None),
                lost=lost,
                duplicated=duplicated,
                dead_letters_good=good_letters,
                dead_letters_poison=poison_letters,
                poison=sum(1 for e in ledger.entries if e.poison),
                recovery_seconds=recovery,
                notes=notes,
                world_failures=world_failures,
                pauses=pauses,
                duplicated_mails=duplicated_mails,
                dead_tasks=dead_tasks,
            )
            results.append(result)
            return result
        finally:
            if nc is not None:
                await nc.close()
            platform.stop()


def postgres_outage(seconds: float) -> Fault:
    async def fault(platform: Platform, burst: Burst) -> str:
        await burst.reached(0.3)
        await platform.stop_postgres()
        await asyncio.sleep(seconds)  # the outage itself, not a wait for anything
        await platform.start_postgres()
        return f"PostgreSQL down {seconds:.0f} s mid-burst"

    return fault


async def kill_certification(platform: Platform, burst: Burst) -> str:
    """SIGKILL at random points of the burst — mid-transaction, mid-publish, even mid-start-up."""
    rng = random.Random()
    process = platform.services["certification"][0]
    shares = sorted(rng.uniform(0.1, 0.9) for _ in range(4))
    for share in shares:
        await burst.reached(share)
        process.kill()
        process.start()
    await process.wait_healthy(timeout=60)
    return f"certification kill -9 ×{len(shares)} at {', '.join(f'{s:.0%}' for s in shares)} of a paced burst"


async def kill_nats(platform: Platform, burst: Burst) -> str:
    await burst.reached(0.4)
    platform.kill_nats()
    await asyncio.sleep(2.0)  # the outage itself
    platform.start_nats()
    return "nats-server kill -9, restarted after 2 s"


def check(result: Result) -> None:
    assert result.ok, result


async def no_fault(platform: Platform, burst: Burst) -> str:
    return ""


async def test_postgres_stopped_briefly(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario("postgres-stopped-5s", tmp_path, results, ledger_dir, postgres_outage(5))
    check(result)


async def test_postgres_stopped_long(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario(
        f"postgres-stopped-{LONG_OUTAGE_SECONDS:.0f}s",
        tmp_path,
        results,
        ledger_dir,
        postgres_outage(LONG_OUTAGE_SECONDS),
    )
    check(result)


async def test_certification_killed_during_burst(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario(
        "certification-kill-9", tmp_path, results, ledger_dir, kill_certification, per_second=30
    )
    check(result)


async def test_nats_server_killed_and_restarted(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario("nats-server-kill-9", tmp_path, results, ledger_dir, kill_nats, per_second=50)
    check(result)


async def test_ten_percent_poison(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario("poison-10pct", tmp_path, results, ledger_dir, no_fault, poison_ratio=0.1)
    check(result)


async def test_two_replicas_of_every_consumer(results, ledger_dir, tmp_path) -> None:
    result = await run_scenario("two-replicas-each", tmp_path, results, ledger_dir, no_fault, replicas=2)
    check(result)


async def test_cluster_leader_killed(results, ledger_dir, tmp_path, nats_cluster: Any) -> None:
    async def kill_leader(platform: Platform, burst: Burst) -> str:
        await burst.reached(0.4)
        nc = await connect(nats_cluster.url, "faults-leader")
        try:
            info = await nc.jetstream().stream_info(EVENTS_STREAM)
        finally:
            await nc.close()
        assert info.cluster is not None and info.cluster.leader
        leader = nats_cluster.node(info.cluster.leader)
        nats_cluster.kill(leader)
        await asyncio.sleep(2.0)  # the outage itself
        nats_cluster.start(leader)
        return f"3-node cluster, stream leader {leader.name} kill -9"

    result = await run_scenario(
        "cluster-leader-kill-9", tmp_path, results, ledger_dir, kill_leader, nats_url=nats_cluster.url
    )
    check(result)
