"""Completions parked for an educator who never registers are bounded (#10 item 6): after the configured
time they go to IIOE_DLQ with reason `educator_unknown`, original bytes and the usual headers."""

from __future__ import annotations

import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.dlq import H_CONSUMER, H_REASON, H_SUBJECT, redrive
from iioe.subjects import DLQ_STREAM, dlq_filter, dlq_subject
from services.certification.main import create_app
from tests.support.certification import OPERATOR_TOKEN, complete, register, settings_for, wait_attempts
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration


async def educator_known(http: httpx.AsyncClient, educator: str) -> bool:
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}  # progress is personal data (contract §8)
    return (await http.get(f"/v1/educators/{educator}/progress", headers=operator)).status_code == 200


async def test_a_completion_parked_too_long_is_dead_lettered_as_educator_unknown(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    ghost = f"edu-{ref}-ghost"
    durable = f"{ref}-certification-progress"
    settings = settings_for(
        infra.nats_url, database_url, f"{ref}-", pending_completion_ttl_seconds=1.0, pending_sweep_seconds=0.2
    )
    async with running_app(create_app(settings)) as http:
        parked = await complete(nc, ghost, "genai-fundamentals", 90)

        async def letter() -> StoredMessage | None:
            msgs = await stream_messages(nc, DLQ_STREAM, dlq_filter(durable))
            return next((m for m in msgs if f'"{parked["id"]}"'.encode() in m.data), None)

        found = await eventually(letter, timeout=30, what="the educator_unknown dead letter")
        assert found is not None

        # the registration finally comes: the operator re-drives the letter and the completion counts
        await register(nc, ghost)
        await eventually(lambda: educator_known(http, ghost), what="the registration")
        await redrive(nc.jetstream(), found.seq)
        await wait_attempts(http, ghost, "genai-fundamentals", 1)
    assert found is not None and found.headers[H_REASON] == "educator_unknown"
    assert found.subject == dlq_subject(durable, "educator_unknown")
    assert found.headers[H_CONSUMER] == durable and found.headers[H_SUBJECT].endswith(".course_completed.v1")
    assert found.json()["id"] == parked["id"]
