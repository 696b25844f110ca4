"""Composition root of the registration service: the PostgreSQL unit of work, the use case, and its
NATS and HTTP entry points, all on one `ServiceRuntime` (one pool, one NATS connection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.service import ServiceRuntime
from services.registration.completions import CompletionImports
from services.registration.handlers import CommandResponder
from services.registration.http import COMPLETIONS_IMPORT_PATH, IMPORT_PATH, build_router
from services.registration.limits import BodyLimit
from services.registration.settings import RegistrationSettings
from services.registration.store import PostgresUnitOfWork
from services.registration.usecases import CascadeRecords, Registrations

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: RegistrationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or RegistrationSettings(**overrides)
    institutions = load_institutions(settings.institutions_file)
    runtime = ServiceRuntime(settings, MIGRATIONS, pool_size=settings.db_pool_size)
    uow = PostgresUnitOfWork(runtime.transaction, runtime.autocommit)
    registrations = Registrations(
        uow,
        institutions,
        source=settings.source,
        batch_size=settings.register_batch_size,
        batches_at_once=settings.register_batches_at_once,
    )
    records = CascadeRecords(uow, institutions, source=settings.source)
    completions = CompletionImports(uow, institutions, source=settings.source)
    commands = CommandResponder(
        registrations, queue=settings.command_queue, max_in_flight=settings.command_max_in_flight
    )
    app = build_service(
        runtime,
        title="IIOE registration service",
        routers=[build_router(registrations, records, institutions, completions)],
        on_start=[lambda: commands.start(runtime.nc)],
        on_stop=[commands.stop],
        health=[commands.health],
        state={"registrations": registrations, "records": records, "completions": completions, "commands": commands},
    )
    # the CSV imports stream under their own limit
    app.add_middleware(BodyLimit, exempt={IMPORT_PATH, COMPLETIONS_IMPORT_PATH})
    return app
