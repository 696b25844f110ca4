"""Composition root of the registration service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import REGISTER_EDUCATOR, command_subject
from services.registration.handlers import build_command_router
from services.registration.http import build_router
from services.registration.settings import RegistrationSettings
from services.registration.usecases import Registrations

MIGRATIONS = Path(__file__).with_name("migrations")


READY_PROBE_SUBJECT = command_subject("ready-probe", REGISTER_EDUCATOR)


async def wait_until_commands_answer(runtime: ServiceRuntime, timeout: float = 10.0) -> None:
    """Report ready only once a command really gets an answer, as a partner's would.

    The subscription can take a moment to be routable after `broker.start()` even past a flush,
    and a partner told "ready" must not see "no responders". The probe body is not JSON, so it is
    answered with `invalid_json` and changes nothing.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await runtime.nc.request(READY_PROBE_SUBJECT, b"ready?", timeout=0.5)
            return
        except (NoRespondersError, NatsTimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"register_educator commands not answered after {timeout:.0f}s") from None
            await asyncio.sleep(0.05)


def create_app(settings: RegistrationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or RegistrationSettings(**overrides)
    institutions = load_institutions(settings.institutions_file)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    registrations = Registrations(runtime, institutions)
    # FastStream logs each message at log_level: DEBUG keeps per-message lines out of INFO (halves throughput)
    broker = NatsBroker(
        settings.nats_url, max_reconnect_attempts=-1, logger=get_logger("faststream"), log_level=logging.DEBUG
    )
    broker.include_router(build_command_router(registrations, settings.command_queue))

    async def start_commands() -> None:
        await broker.start()
        await wait_until_commands_answer(runtime)

    return build_service(
        runtime,
        title="IIOE registration service",
        routers=[build_router(registrations, institutions)],
        on_start=[start_commands],
        on_stop=[broker.stop],
        state={"broker": broker},
    )
