"""Composition root of the certification service: settings → adapters → use cases → entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.service import ServiceRuntime
from services.certification.handlers import build_consumers
from services.certification.http import build_router
from services.certification.reference import load_catalogue
from services.certification.settings import CertificationSettings
from services.certification.store import PostgresUnitOfWork
from services.certification.usecases import Certification

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: CertificationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or CertificationSettings(**overrides)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    certification = Certification(
        PostgresUnitOfWork(
            lambda: runtime.pool,
            source=settings.source,
            after_outbox=lambda: _wake_relay(runtime),
            vault=settings.key_vault(),
        ),
        load_catalogue(*settings.catalogue_files),
        dict(load_institutions(settings.institutions_file)),
        issuer=settings.issuer,
        on_issued=runtime.metrics.certificate_issued,
    )
    build_consumers(runtime, certification, settings.consumer_batch_size)

    async def ensure_signing_key() -> None:
        await certification.seal_plaintext_keys()  # upgrade path: keys stored before #9 are sealed now
        await certification.keyring()  # first start creates the key (under a lock shared by replicas)

    return build_service(
        runtime,
        title="IIOE certification service",
        description="Programmes, progress, certificates (Open Badges 3.0 VC-JWT), verification and JWKS.",
        routers=[build_router(certification, settings)],
        on_start=[ensure_signing_key],
        state={"certification": certification},
    )


def _wake_relay(runtime: ServiceRuntime) -> None:
    """Publish what a transaction just committed to the outbox now rather than at the next poll."""
    if runtime.relay is not None:
        runtime.relay.wake()
