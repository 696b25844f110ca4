"""The one composition helper every service uses: a FastAPI app around a `ServiceRuntime`.

Written once here so that health probes, OpenAPI docs, the error shape and the start/stop order
are the same in every service; a service's `main.py` only says what it consumes and serves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response

from iioe.runtime.http import ERROR_RESPONSES, install_error_handlers
from iioe.runtime.limits import BodySizeLimit, PublicRateLimit
from iioe.runtime.metrics import CONTENT_TYPE_LATEST, HttpMetrics
from iioe.runtime.service import STOP_TIMEOUT_SECONDS, ServiceRuntime
from iioe.runtime.tracing import TraceMiddleware, configure_tracing

Hook = Callable[[], Awaitable[Any]]
HealthFacts = Callable[[], Mapping[str, Any]]
"""Extra readiness facts of a service; a fact `"ok": False` makes the service not ready."""


def build_service(
    runtime: ServiceRuntime,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    on_start: Sequence[Hook] = (),
    on_stop: Sequence[Hook] = (),
    health: Sequence[HealthFacts] = (),
    state: Mapping[str, Any] | None = None,
    large_bodies: Sequence[str] = (),
) -> FastAPI:
    """Build the app: the runtime starts with it (then `on_start`), and stops after `on_stop`.

    Probes: `/livez` (the process and its tasks; restart when it fails), `/readyz` (database and
    NATS answer; route no traffic while it fails), `/healthz` (the same as `/readyz`, with details).
    `/metrics`: Prometheus text (public, no personal data); HTTP requests are counted and traced
    (W3C `traceparent`, see `iioe.runtime.tracing`).
    Limits: bodies over `max_body_bytes` → 413 (except under the `large_bodies` path prefixes,
    which bound their own input); unauthenticated clients → 429 past `public_rate_per_second`.
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            for hook in on_start:
                await hook()
            yield
        finally:
            for hook in reversed(on_stop):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(hook(), STOP_TIMEOUT_SECONDS)  # a stuck hook must not hold the stop
            await runtime.stop()

    configure_tracing(runtime.settings.service_name)
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan, responses=ERROR_RESPONSES)
    app.state.runtime = runtime
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    install_error_handlers(app)

    async def readiness() -> JSONResponse:
        body = await runtime.health()
        for facts in health:
            extra = dict(facts())
            if extra.pop("ok", True) is False:
                body["status"] = "degraded"
            body.update(extra)
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def liveness() -> JSONResponse:
        body = runtime.liveness()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    async def metrics() -> Response:
        await runtime.refresh_metrics()
        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    probe: dict[int | str, dict[str, Any]] = {
        503: {"description": "not live / not ready (the same body, `status` is not `ok`)", "model": dict[str, Any]}
    }
    text: dict[int | str, dict[str, Any]] = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}
    app.add_api_route("/livez", liveness, methods=["GET"], tags=["operations"], summary="Liveness", responses=probe)
    app.add_api_route("/readyz", readiness, methods=["GET"], tags=["operations"], summary="Readiness", responses=probe)
    app.add_api_route(
        "/healthz", readiness, methods=["GET"], tags=["operations"], summary="Readiness (details)", responses=probe
    )
    app.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses=text,
    )
    for router in routers:
        app.include_router(router)
    settings = runtime.settings
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, exempt=tuple(large_bodies))
    app.add_middleware(
        PublicRateLimit, rate_per_second=settings.public_rate_per_second, burst=settings.public_rate_burst
    )
    app.add_middleware(TraceMiddleware)
    app.add_middleware(HttpMetrics, metrics=runtime.metrics, routes=app.router.routes)  # outermost: counts 413/429
    return app
