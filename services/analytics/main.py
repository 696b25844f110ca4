"""Composition root of the analytics service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.reference import load_institutions
from iioe.runtime.consumer import ConsumerSpec
from iioe.runtime.http import add_health_route, install_error_handlers, runtime_lifespan
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from services.analytics.handlers import Projector
from services.analytics.http import build_router, mount_dashboard
from services.analytics.models import Summary
from services.analytics.projections import ProjectionRules
from services.analytics.reports import Reports
from services.analytics.settings import AnalyticsSettings
from services.analytics.snapshots import SnapshotPublisher, SummaryFeed

MIGRATIONS = Path(__file__).with_name("migrations")


def rules_from(settings: AnalyticsSettings) -> ProjectionRules:
    return ProjectionRules(settings.programme_id, tuple(settings.programme_courses), settings.month_timezone)


class AnalyticsService:
    """Wires the runtime, the projector, the reports and the snapshot loop; built before start."""

    def __init__(self, settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.rules = rules_from(settings)
        self.institutions = load_institutions(settings.institutions_file)
        self.runtime = ServiceRuntime(settings, MIGRATIONS, consumers=self._consumers, run_relay=False)
        self.feed = SummaryFeed()
        self.snapshots = SnapshotPublisher(
            lambda: self.runtime.js, self._read_summary, settings.snapshot_interval_seconds
        )
        self.projector = Projector(self.runtime, self.rules, self.snapshots.mark_dirty)
        self.reports = Reports(lambda: self.runtime.pool, self.institutions, self.rules)
        self._tasks: list[asyncio.Task[None]] = []

    async def _read_summary(self) -> Summary:
        return await self.reports.summary()

    def _consumers(self, runtime: ServiceRuntime) -> list[ConsumerSpec]:
        return [
            runtime.consumer_spec(
                "projections",
                EVENTS_STREAM,
                [EVENTS_SUBJECTS],
                self.projector.on_event,
                batch_handler=self.projector.on_batch,
                batch_size=self.settings.batch_size,
            )
        ]

    async def start_outputs(self) -> None:
        await self.feed.start(self.runtime.nc)
        self._tasks.append(asyncio.create_task(self.snapshots.run(), name="analytics-snapshots"))

    async def stop_outputs(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.feed.stop()


def create_app(settings: AnalyticsSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or AnalyticsSettings(**overrides)
    service = AnalyticsService(settings)
    lifespan = runtime_lifespan(
        service.runtime, after_start=[service.start_outputs], before_stop=[service.stop_outputs]
    )
    app = FastAPI(title="IIOE analytics service", version="1.0.0", lifespan=lifespan)
    app.state.runtime = service.runtime
    app.state.analytics = service
    install_error_handlers(app)
    add_health_route(app, service.runtime)
    app.include_router(build_router(service.reports, service.feed))
    mount_dashboard(app)
    return app
