"""Composition root of the certification service: settings → adapters → use cases → entry points."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.access import RESTORE_CONSUMER
from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from services.certification.catalogue_http import build_catalogue_router
from services.certification.handlers import CONSUMER_NAME, build_consumers
from services.certification.http import build_router
from services.certification.listing import CertificateListing
from services.certification.listing_http import build_listing_router
from services.certification.pages import build_pages_router
from services.certification.portfolio_http import build_portfolio_router
from services.certification.portfolio_usecases import Portfolios
from services.certification.reference import load_catalogue
from services.certification.restore import LogRestore, missing_kids, stream_reader
from services.certification.settings import CertificationSettings
from services.certification.store import PostgresUnitOfWork
from services.certification.store_listing import PostgresListingReader
from services.certification.store_portfolio import PostgresPortfolioUnitOfWork
from services.certification.store_restore import restore_if_empty
from services.certification.transfer_service import CreditTransfers, restore_appliers
from services.certification.transfers_http import build_transfers_router
from services.certification.usecases import Certification

MIGRATIONS = Path(__file__).with_name("migrations")
log = get_logger(__name__)


def create_app(settings: CertificationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or CertificationSettings(**overrides)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    vault = settings.key_vault()
    uow = PostgresUnitOfWork(
        lambda: runtime.pool, source=settings.source, after_outbox=lambda: _wake_relay(runtime), vault=vault
    )
    certification = Certification(
        uow,
        load_catalogue(*settings.catalogue_files),
        dict(load_institutions(settings.institutions_file)),
        issuer=settings.issuer,
        on_issued=runtime.metrics.certificate_issued,
        public_url=settings.base_url,
        status_list_size=settings.status_list_size,
    )
    portfolios = Portfolios(PostgresPortfolioUnitOfWork(lambda: runtime.pool, vault), certification)
    transfers = CreditTransfers(uow, certification.institutions)
    restored = asyncio.Event()
    build_consumers(
        runtime,
        certification,
        settings.consumer_batch_size,
        portfolios,
        ready=restored.wait,
        workers=settings.consumer_workers,
    )
    listing = CertificateListing(
        PostgresListingReader(lambda: runtime.pool), certification.catalogue, certification.verification_url
    )

    async def ensure_signing_key() -> None:
        await certification.seal_plaintext_keys()  # upgrade path: keys stored before #9 are sealed now
        await restore_from_log(runtime, certification, uow, settings)  # an empty database is refilled first
        restored.set()
        await certification.keyring()  # first start creates the key (under a lock shared by replicas)

    async def expire_parked_completions() -> None:
        """Parked completions of educators who never register are bounded (`pending_completion_ttl_seconds`)."""
        ttl = timedelta(seconds=settings.pending_completion_ttl_seconds)
        await restored.wait()
        while True:
            try:
                while await certification.expire_pending(ttl) > 0:
                    pass
            except Exception as exc:  # a database outage: try again at the next sweep
                log.warning("parked completions not checked", error=repr(exc))
            await asyncio.sleep(settings.pending_sweep_seconds)

    runtime.add_background_task("expire-parked-completions", expire_parked_completions)

    return build_service(
        runtime,
        title="IIOE certification service",
        description="Programmes, progress, certificates (Open Badges 3.0 VC-JWT), verification and JWKS.",
        routers=[
            build_pages_router(certification),  # `/v1/certificates/{id}.pdf` and
            build_listing_router(listing),  # `/v1/certificates/export` before `/v1/certificates/{id}`
            build_catalogue_router(certification.catalogue),
            build_router(certification, settings),
            build_portfolio_router(portfolios, certification),
            build_transfers_router(transfers),
        ],
        on_start=[ensure_signing_key],
        state={"certification": certification, "credit_transfers": transfers},
    )


def _wake_relay(runtime: ServiceRuntime) -> None:
    """Publish what a transaction just committed to the outbox now rather than at the next poll."""
    if runtime.relay is not None:
        runtime.relay.wake()


async def restore_from_log(
    runtime: ServiceRuntime, certification: Certification, uow: PostgresUnitOfWork, settings: CertificationSettings
) -> None:
    """On an empty database, rebuild certificates, decisions and progress from IIOE_EVENTS (`restore.py`)."""
    restore = LogRestore(
        certification, uow, settings.source, appliers=restore_appliers(), durable=runtime.durable(CONSUMER_NAME)
    )
    reader = stream_reader(runtime.js, name=f"{settings.consumer_prefix}{RESTORE_CONSUMER}")
    report = await restore_if_empty(runtime.pool, lambda: restore.restore(reader))
    if report is not None and (missing := missing_kids(report, await certification.jwks())):
        log.error("restored credentials name keys not in the JWKS: run `iioe certification keys import`", kids=missing)
