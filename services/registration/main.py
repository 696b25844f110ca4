"""Composition root of the registration service."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.nats import NatsBroker

from iioe.reference import load_institutions
from iioe.runtime.http import add_health_route, install_error_handlers, runtime_lifespan
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from services.registration.handlers import build_command_router
from services.registration.http import build_router
from services.registration.settings import RegistrationSettings
from services.registration.usecases import Registrations

MIGRATIONS = Path(__file__).with_name("migrations")


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
        # the SUB must reach the server before we report ready, or early requests see "no responders"
        await broker.config.connection_state.connection.flush()

    lifespan = runtime_lifespan(runtime, after_start=[start_commands], before_stop=[broker.stop])
    app = FastAPI(title="IIOE registration service", version="1.0.0", lifespan=lifespan)
    app.state.runtime = runtime
    app.state.broker = broker
    install_error_handlers(app)
    add_health_route(app, runtime)
    app.include_router(build_router(registrations, institutions))
    return app
