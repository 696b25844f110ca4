"""`iioe status --json` against a real nats-server and real service processes' HTTP ports."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from rich.console import Console

from iioe.subjects import EVENTS_STREAM, event_subject
from iioe_tools.cli.status import render
from iioe_tools.embedded import free_port
from services.certification.handlers import CONSUMER_NAME
from services.certification.main import create_app as create_certification
from services.registration.main import create_app as create_registration
from services.registration.settings import RegistrationSettings
from tests.support.certification import register, settings_for
from tests.support.helpers import Infra, eventually

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """The app behind a real HTTP port (uvicorn in this process); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: _started(server, task), timeout=30, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises why it stopped
    return server.started


def iioe_status(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "iioe_tools.cli.main", "status", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )
    assert done.stdout, done.stderr.decode()
    return done.returncode, json.loads(done.stdout)


async def test_status_json_reports_streams_lag_dead_letters_and_services(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    durable = f"{ref}-certification-{CONSUMER_NAME}"
    registration = create_registration(
        RegistrationSettings(NATS_URL=infra.nats_url, DATABASE_URL=database_url, consumer_prefix=f"{ref}-")
    )
    certification = create_certification(settings_for(infra.nats_url, database_url, f"{ref}-"))
    async with serving(registration) as registration_url, serving(certification) as certification_url:
        await register(nc, f"edu-{ref}")
        await nc.jetstream().publish(event_subject("must", "course_completed"), b"{not json")
        await nc.jetstream().publish(event_subject("must", "course_completed"), b"[]")

        async def consumed() -> bool:
            info = await nc.jetstream().consumer_info(EVENTS_STREAM, durable)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await eventually(consumed, what="the certification consumer to catch up")
        closed = f"http://127.0.0.1:{free_port()}"
        code, status = await asyncio.to_thread(
            iioe_status,
            {
                "NATS_URL": infra.nats_url,
                "IIOE_REGISTRATION_URL": registration_url,
                "IIOE_CERTIFICATION_URL": certification_url,
                "IIOE_ANALYTICS_URL": closed,
                "IIOE_NOTIFICATIONS_URL": closed,
            },
        )

    assert code == 1 and status["ok"] is False  # analytics and notifications do not answer
    assert status["nats"]["status"] == "ok"
    streams = {s["name"]: s for s in status["streams"]}
    assert streams[EVENTS_STREAM]["messages"] == 3 and streams[EVENTS_STREAM]["replicas"] == 1
    assert streams[EVENTS_STREAM]["bytes"] > 0 and streams[EVENTS_STREAM]["consumers"] >= 1
    consumers = {c["name"]: c for c in status["consumers"]}
    assert consumers[durable]["stream"] == EVENTS_STREAM
    assert consumers[durable]["num_pending"] == 0 and consumers[durable]["num_redelivered"] == 0
    dead = status["dead_letters"]
    assert dead["total"] == 2
    assert dead["by_reason"] == {"invalid_json": 1, "not_an_object": 1}
    assert dead["by_consumer"] == {durable: {"invalid_json": 1, "not_an_object": 1}}
    services = {s["name"]: s for s in status["services"]}
    assert services["registration"]["status"] == "ok" and services["registration"]["outbox_pending"] == 0
    assert services["certification"]["status"] == "ok" and services["certification"]["url"] == certification_url
    assert services["certification"]["outbox_oldest_pending_age_seconds"] == 0
    assert services["analytics"]["status"] == "unreachable" and services["notifications"]["status"] == "unreachable"

    console = Console(file=io.StringIO(), width=160)
    console.print(render(status))
    screen = console.file.getvalue()  # type: ignore[attr-defined]
    assert durable in screen and "invalid_json" in screen and "unreachable" in screen
