"""Composition root of the analytics service: the only place that picks the PostgreSQL adapters
for the use case (`Projector`) and the reports, and declares the consumer and the snapshot loop."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from services.analytics.domain import ProjectionRules
from services.analytics.handlers import ProjectionHandlers
from services.analytics.http import build_router, mount_dashboard
from services.analytics.models import Summary
from services.analytics.reports import Reports
from services.analytics.settings import AI_PROGRAMME_ID, AnalyticsSettings
from services.analytics.snapshots import SnapshotPublisher, SummaryFeed
from services.analytics.store import PgProjectionUnitOfWork
from services.analytics.store_reads import PgProjectionReader
from services.analytics.usecases import Projector

MIGRATIONS = Path(__file__).with_name("migrations")


def programme_tiers(settings: AnalyticsSettings) -> dict[str, str]:
    """Programme → tier from the shared programme catalogue (`iioe.reference.programmes`) where this
    build has it; otherwise only the followed programme, whose tier contract v1 fixes (standalone)."""
    try:
        catalogue = importlib.import_module("iioe.reference.programmes")
        return {pid: str(p.tier) for pid, p in catalogue.load_programmes().items()}
    except (ImportError, AttributeError, ValueError):
        return {settings.programme_id: "standalone"} if settings.programme_id == AI_PROGRAMME_ID else {}


def rules_from(settings: AnalyticsSettings) -> ProjectionRules:
    return ProjectionRules(settings.programme_id, tuple(settings.programme_courses), settings.month_timezone)


class AnalyticsService:
    """Wires the runtime, the projector, the reports and the snapshot loop; built before start."""

    def __init__(self, settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.rules = rules_from(settings)
        self.institutions = load_institutions(settings.institutions_file)
        self.runtime = ServiceRuntime(settings, MIGRATIONS, run_relay=False)
        self.feed = SummaryFeed()
        self.snapshots = SnapshotPublisher(
            lambda: self.runtime.js, self._read_summary, settings.snapshot_interval_seconds
        )
        self.projector = Projector(
            PgProjectionUnitOfWork(self.runtime.transaction, self.rules), on_change=self.snapshots.mark_dirty
        )
        self.reports = Reports(
            PgProjectionReader(lambda: self.runtime.pool), self.institutions, self.rules, programme_tiers(settings)
        )
        handlers = ProjectionHandlers(self.projector)
        self.runtime.add_consumer(
            "projections",
            EVENTS_STREAM,
            [EVENTS_SUBJECTS],
            handlers.on_event,
            batch_handler=handlers.on_batch,
            batch_size=settings.batch_size,
        )
        self.runtime.add_background_task("analytics-snapshots", self.snapshots.run)

    async def _read_summary(self) -> Summary:
        return await self.reports.summary()

    async def start_outputs(self) -> None:
        await self.feed.start(self.runtime.nc)

    async def stop_outputs(self) -> None:
        await self.feed.stop()


def create_app(settings: AnalyticsSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or AnalyticsSettings(**overrides)
    service = AnalyticsService(settings)
    app = build_service(
        service.runtime,
        title="IIOE analytics service",
        routers=[build_router(service.reports, service.feed)],
        on_start=[service.start_outputs],
        on_stop=[service.stop_outputs],
        state={"analytics": service},
    )
    mount_dashboard(app)
    return app
