"""A 3-node JetStream cluster: R3 streams ride out the loss of their leader, and while quorum is lost
no publish is believed and consumers wait — afterwards every event has its effect exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.inbox import claim
from iioe.runtime.nats import cluster_size, connect, stream_replicas
from iioe.runtime.service import ServiceRuntime
from iioe.runtime.settings import ServiceSettings
from iioe.subjects import DLQ_STREAM, EVENTS_STREAM
from tests.support.helpers import completion, eventually, stream_messages

pytestmark = pytest.mark.integration


async def publish_until_acked(
    js: JetStreamContext, subject: str, event_id: str, inst: str, timeout: float = 60
) -> None:
    """A careful partner: re-send with the same `Nats-Msg-Id` until a PubAck says it is stored."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.05
    while True:
        try:
            await js.publish(subject, completion(event_id, inst), headers={"Nats-Msg-Id": event_id}, timeout=1.0)
            return
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


class Effects:
    """A consumer service whose effect is a row per event (no unique key: a duplicate would show)."""

    def __init__(self, nats_url: str, database_url: str, ref: str, tmp: Path, subject: str) -> None:
        migrations = tmp / "migrations"
        migrations.mkdir(exist_ok=True)
        (migrations / "001_effects.sql").write_text("CREATE TABLE effects (event_id text NOT NULL);")
        settings = ServiceSettings(
            service_name="cluster",
            nats_url=nats_url,
            database_url=database_url,
            db_schema="cluster",
            consumer_prefix=f"{ref}-",
            ack_wait_seconds=5.0,
            retry_backoff_seconds=(0.1,),
            outage_backoff_initial_seconds=0.1,
            outage_backoff_max_seconds=1.0,
            outbox_relay_enabled=False,
        )
        self.runtime = ServiceRuntime(settings, migrations, pool_size=3)
        self.runtime.add_consumer("effects", EVENTS_STREAM, [subject], self.on_event, batch_size=50)

    async def on_event(self, received: ReceivedEvent) -> None:
        async with self.runtime.transaction() as conn:
            if await claim(conn, "cluster", received.id):
                await conn.execute("INSERT INTO effects (event_id) VALUES ($1)", received.id)

    async def counts(self) -> tuple[int, int]:
        async with self.runtime.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM effects")
            assert row is not None
            return int(row["n"]), int(row["d"])


async def streams_answer(nc: NATS, *streams: str) -> bool:
    """True once every stream has a leader that answers: after a node restarts, the cluster may still
    be electing one (a `STREAM.INFO` then times out), which says nothing about the stream's contents."""
    js = nc.jetstream()
    for stream in streams:
        try:
            info = await asyncio.wait_for(js.stream_info(stream), timeout=2.0)
        except Exception:
            return False
        if info.cluster is None or not info.cluster.leader:
            return False
    return True


async def stream_leader(nc: NATS) -> str:
    info = await nc.jetstream().stream_info(EVENTS_STREAM)
    assert info.cluster is not None and info.cluster.leader
    return info.cluster.leader


async def test_provisioning_asks_the_server_and_creates_r3_streams(nats_cluster: Any) -> None:
    nc = await connect(nats_cluster.url, "pytest")
    try:
        assert cluster_size(nc) == 3
        assert stream_replicas(nc) == 3
        assert stream_replicas(nc, override=1) == 1
        info = await nc.jetstream().stream_info(EVENTS_STREAM)
        assert info.config.num_replicas == 3
    finally:
        await nc.close()


async def test_stream_leader_killed_mid_burst_loses_and_duplicates_nothing(
    nats_cluster, database_url, ref, tmp_path
) -> None:
    inst = f"x{ref}"
    subject = f"iioe.events.{inst}.course_completed.v1"
    service = Effects(nats_cluster.url, database_url, ref, tmp_path, subject)
    await service.runtime.start()
    nc = await connect(nats_cluster.url, "pytest")
    js = nc.jetstream()
    try:
        ids = [f"{ref}-{i}" for i in range(300)]
        for event_id in ids[:100]:
            await publish_until_acked(js, subject, event_id, inst)
        leader = nats_cluster.node(await stream_leader(nc))
        nats_cluster.kill(leader)
        for event_id in ids[100:]:
            await publish_until_acked(js, subject, event_id, inst)
        nats_cluster.start(leader)

        async def all_applied() -> bool:
            return (await service.counts())[1] == len(ids)

        await eventually(all_applied, timeout=60, interval=0.2, what="every event applied after the leader kill")
        assert await service.counts() == (len(ids), len(ids))
        assert service.runtime.consumers[0].dead_lettered == 0
        await eventually(
            lambda: streams_answer(nc, EVENTS_STREAM, DLQ_STREAM), timeout=60, interval=0.5, what="stream leaders"
        )
        assert await stream_messages(nc, DLQ_STREAM, f"iioe.dlq.{service.runtime.consumers[0].spec.durable}.>") == []
    finally:
        await nc.close()
        await service.runtime.stop()


async def test_lost_quorum_refuses_publishes_and_consumers_wait(nats_cluster, database_url, ref, tmp_path) -> None:
    inst = f"x{ref}"
    subject = f"iioe.events.{inst}.course_completed.v1"
    service = Effects(nats_cluster.url, database_url, ref, tmp_path, subject)
    await service.runtime.start()
    nc = await connect(nats_cluster.url, "pytest")
    js = nc.jetstream()
    try:
        before = [f"{ref}-before-{i}" for i in range(50)]
        for event_id in before:
            await publish_until_acked(js, subject, event_id, inst)

        async def applied(n: int) -> bool:
            return (await service.counts())[1] >= n

        await eventually(lambda: applied(len(before)), timeout=30, what="events before the quorum loss")

        _survivor, *stopped = nats_cluster.nodes
        for node in stopped:
            nats_cluster.kill(node)
        during = [f"{ref}-during-{i}" for i in range(20)]
        refused = 0
        for event_id in during:
            try:
                await js.publish(subject, completion(event_id, inst), headers={"Nats-Msg-Id": event_id}, timeout=1.0)
            except Exception:
                refused += 1
        assert refused == len(during), "a PubAck was given without quorum"
        assert await service.counts() == (len(before), len(before)), "the consumer did not wait"
        assert service.runtime.consumers[0].dead_lettered == 0

        for node in stopped:
            nats_cluster.start(node)
        for event_id in during:  # the partner re-sends what was never acknowledged
            await publish_until_acked(js, subject, event_id, inst)
        total = len(before) + len(during)
        await eventually(lambda: applied(total), timeout=60, interval=0.2, what="every event applied after quorum")
        assert await service.counts() == (total, total)
        assert service.runtime.consumers[0].dead_lettered == 0
    finally:
        await nc.close()
        await service.runtime.stop()
