"""Composition root of the certification service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.http import add_health_route, install_error_handlers, runtime_lifespan
from iioe.runtime.service import ServiceRuntime
from services.certification.domain import load_catalogue
from services.certification.handlers import CONSUMER_NAME, build_consumers
from services.certification.http import build_router
from services.certification.settings import CertificationSettings
from services.certification.usecases import Certification

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: CertificationSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or CertificationSettings(**overrides)
    catalogue = load_catalogue(*settings.catalogue_files)
    institutions = load_institutions(settings.institutions_file)
    certification: Certification | None = None

    def consumers(runtime: ServiceRuntime) -> list[Any]:
        assert certification is not None
        return build_consumers(runtime, certification, settings.consumer_batch_size)

    runtime = ServiceRuntime(settings, MIGRATIONS, consumers=consumers)
    certification = Certification(runtime, settings, catalogue, dict(institutions), runtime.durable(CONSUMER_NAME))

    async def ensure_signing_key() -> None:
        await certification.keyring()  # first start creates the key (under a lock shared by replicas)

    lifespan = runtime_lifespan(runtime, after_start=[ensure_signing_key])
    app = FastAPI(
        title="IIOE certification service",
        version="1.0.0",
        description="Programmes, progress, certificates (Open Badges 3.0 VC-JWT), verification and JWKS.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.certification = certification
    install_error_handlers(app)
    add_health_route(app, runtime)
    app.include_router(build_router(certification, settings))
    return app
