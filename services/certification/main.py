"""Composition root of the certification service: settings → adapters → use cases → entry points."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.service import ServiceRuntime
from services.certification.catalogue_http import build_catalogue_router
from services.certification.handlers import build_consumers
from services.certification.http import build_router
from services.certification.listing import CertificateListing
from services.certification.listing_http import build_listing_router
from services.certification.pages import build_pages_router
from services.certification.reference import load_catalogue
from services.certification.settings import CertificationSettings
from services.certification.store import PostgresUnitOfWork
from services.certification.store_listing import PostgresListingReader
from services.certification.usecases import Certification

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: CertificationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or CertificationSettings(**overrides)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    certification = Certification(
        PostgresUnitOfWork(lambda: runtime.pool, source=settings.source, after_outbox=lambda: _wake_relay(runtime)),
        load_catalogue(*settings.catalogue_files),
        dict(load_institutions(settings.institutions_file)),
        issuer=settings.issuer,
        on_issued=runtime.metrics.certificate_issued,
        public_url=settings.base_url,
        status_list_size=settings.status_list_size,
    )
    build_consumers(runtime, certification, settings.consumer_batch_size)
    listing = CertificateListing(
        PostgresListingReader(lambda: runtime.pool), certification.catalogue, certification.verification_url
    )

    async def ensure_signing_key() -> None:
        await certification.keyring()  # first start creates the key (under a lock shared by replicas)

    return build_service(
        runtime,
        title="IIOE certification service",
        description="Programmes, progress, certificates (Open Badges 3.0 VC-JWT), verification and JWKS.",
        routers=[
            build_pages_router(certification),  # `/v1/certificates/{id}.pdf` and
            build_listing_router(listing),  # `/v1/certificates/export` before `/v1/certificates/{id}`
            build_catalogue_router(certification.catalogue),
            build_router(certification, settings),
        ],
        on_start=[ensure_signing_key],
        state={"certification": certification},
    )


def _wake_relay(runtime: ServiceRuntime) -> None:
    """Publish what a transaction just committed to the outbox now rather than at the next poll."""
    if runtime.relay is not None:
        runtime.relay.wake()
