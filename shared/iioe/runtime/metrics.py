"""Prometheus metrics of one service process, served at `/metrics` by the builder.

Each app owns its `CollectorRegistry` (not the process-global one), so several apps in one test
process never collide. What is measured (see docs/observability.md for meanings and alerts):

* consumers: messages handled / failed (will be retried) / dead-lettered per durable, end-to-end
  latency (CloudEvent `time` → effect handled), and lag (`num_pending`) read from JetStream;
* outbox: published / failed publishes, backlog and age of the oldest pending row;
* HTTP: requests by method, route template and status, and their durations;
* what the services do: certificates issued, mails and webhooks sent or failed.

Services count their own outcomes through the runtime, e.g.
`runtime.metrics.certificate_issued(programme_id)` or `runtime.metrics.counter("name_total", "help").inc()`.
Labels never hold personal data (no ids of people, no e-mail addresses): only consumer names,
reasons, route templates and programme ids.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import BaseRoute, Match

from iioe.runtime.logging import get_logger

log = get_logger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
"""End-to-end latency: milliseconds in the normal case, up to an hour during an outage or replay."""
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "<unmatched>"
"""Route label of requests no route matched: never the raw path (unbounded, may hold ids)."""

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics", "ServiceMetrics"]


class ServiceMetrics:
    """The metrics of one service, in a registry of its own."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._custom: dict[str, Counter] = {}
        self._handled: dict[str, Counter] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}
        r = self.registry
        Gauge("iioe_service_info", "Always 1; the service name as a label", ["service"], registry=r).labels(
            service
        ).set(1)
        # consumers
        self.messages_handled = Counter(
            "iioe_messages_handled_total", "Events whose effect was applied and acked", ["consumer"], registry=r
        )
        self.messages_failed = Counter(
            "iioe_messages_failed_total", "Handler failures that were nak'ed for a retry", ["consumer"], registry=r
        )
        self.messages_dead_lettered = Counter(
            "iioe_messages_dead_lettered_total", "Messages sent to IIOE_DLQ", ["consumer", "reason"], registry=r
        )
        self.event_latency = Histogram(
            "iioe_event_latency_seconds",
            "End to end: the CloudEvent `time` until this consumer handled the event",
            ["consumer", "event_type"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_pending = Gauge(
            "iioe_consumer_pending_messages",
            "Consumer lag: messages not yet delivered (num_pending)",
            ["consumer"],
            registry=r,
        )
        self.consumer_ack_pending = Gauge(
            "iioe_consumer_ack_pending_messages", "Delivered but not yet acknowledged", ["consumer"], registry=r
        )
        self.consumer_redelivered = Gauge(
            "iioe_consumer_redelivered_messages",
            "Messages delivered more than once (num_redelivered)",
            ["consumer"],
            registry=r,
        )
        # outbox
        self.outbox_published = Counter("iioe_outbox_published_total", "Outbox rows published to JetStream", registry=r)
        self.outbox_publish_failed = Counter(
            "iioe_outbox_publish_failed_total", "Outbox publishes that failed (retried with backoff)", registry=r
        )
        self.outbox_pending = Gauge("iioe_outbox_pending", "Outbox rows not yet published", registry=r)
        self.outbox_oldest_age = Gauge(
            "iioe_outbox_oldest_pending_age_seconds", "Age of the oldest unpublished outbox row (0: none)", registry=r
        )
        # HTTP
        self.http_requests = Counter(
            "iioe_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "iioe_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        # what the services do
        self.certificates_issued = Counter(
            "iioe_certificates_issued_total", "Certificates issued", ["programme"], registry=r
        )
        self.mails = Counter(
            "iioe_mails_total", "Notification e-mails by outcome (sent|failed)", ["outcome"], registry=r
        )
        self.webhooks = Counter(
            "iioe_webhooks_total", "Partner webhook deliveries by outcome (sent|failed)", ["outcome"], registry=r
        )
        for outcome in ("sent", "failed"):  # both series exist from the start, at 0
            self.mails.labels(outcome)
            self.webhooks.labels(outcome)
        self.refresh_errors = Counter(
            "iioe_metrics_refresh_errors_total", "Gauges not refreshed at a scrape", ["source"], registry=r
        )

    # --- typed helpers for the services ------------------------------------------------------------

    def certificate_issued(self, programme: str) -> None:
        self.certificates_issued.labels(programme).inc()

    def mail_sent(self) -> None:
        self.mails.labels("sent").inc()

    def mail_failed(self) -> None:
        self.mails.labels("failed").inc()

    def webhook_sent(self) -> None:
        self.webhooks.labels("sent").inc()

    def webhook_failed(self) -> None:
        self.webhooks.labels("failed").inc()

    def counter(self, name: str, documentation: str = "", labelnames: Sequence[str] = ()) -> Counter:
        """A counter of the service's own, created on first use (`iioe_` is prefixed when missing)."""
        full = name if name.startswith("iioe_") else f"iioe_{name}"
        existing = self._custom.get(full)
        if existing is None:
            existing = Counter(full, documentation or full, list(labelnames), registry=self.registry)
            self._custom[full] = existing
        return existing

    # --- hooks of the runtime -----------------------------------------------------------------------

    def handled(self, consumer: str, event_type: str, event_time: datetime | None, count: int = 1) -> None:
        """One event's effect applied (per message: a few µs, the labelled children are cached)."""
        handled = self._handled.get(consumer)
        if handled is None:
            handled = self._handled[consumer] = self.messages_handled.labels(consumer)
        handled.inc(count)
        if event_time is not None:
            if event_time.tzinfo is None:
                event_time = event_time.replace(tzinfo=UTC)
            latency = self._latency.get((consumer, event_type))
            if latency is None:
                latency = self._latency[(consumer, event_type)] = self.event_latency.labels(consumer, event_type)
            latency.observe(max(0.0, (datetime.now(UTC) - event_time).total_seconds()))

    def failed(self, consumer: str) -> None:
        self.messages_failed.labels(consumer).inc()

    def dead_lettered(self, consumer: str, reason: str) -> None:
        self.messages_dead_lettered.labels(consumer, reason).inc()

    def declare_consumer(self, consumer: str) -> None:
        """Make a consumer's series exist (at 0) before its first message."""
        self.messages_handled.labels(consumer)
        self.messages_failed.labels(consumer)

    # --- gauges read at scrape time -----------------------------------------------------------------

    async def refresh(
        self,
        *,
        js: JetStreamContext | None,
        consumers: Sequence[tuple[str, str]],
        pool: asyncpg.Pool | None,
        timeout: float = 1.0,
    ) -> None:
        """Read consumer lag (JetStream consumer info) and the outbox backlog, each bounded by
        `timeout`; on failure the previous values stay and `iioe_metrics_refresh_errors_total` grows."""
        jobs: list[tuple[str, Awaitable[None]]] = []
        if js is not None:
            jobs += [("consumer", self._refresh_consumer(js, stream, durable)) for stream, durable in consumers]
        if pool is not None:
            jobs.append(("outbox", self._refresh_outbox(pool)))
        results = await asyncio.gather(*(asyncio.wait_for(job, timeout) for _, job in jobs), return_exceptions=True)
        for (source, _), result in zip(jobs, results, strict=True):
            if isinstance(result, BaseException):
                self.refresh_errors.labels(source).inc()
                log.debug("metrics refresh failed", source=source, error=repr(result))

    async def _refresh_consumer(self, js: JetStreamContext, stream: str, durable: str) -> None:
        info = await js.consumer_info(stream, durable)
        self.consumer_pending.labels(durable).set(info.num_pending or 0)
        self.consumer_ack_pending.labels(durable).set(info.num_ack_pending or 0)
        self.consumer_redelivered.labels(durable).set(info.num_redelivered or 0)

    async def _refresh_outbox(self, pool: asyncpg.Pool) -> None:
        row = await pool.fetchrow(
            "SELECT count(*) AS pending,"
            " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
            " FROM outbox WHERE published_at IS NULL"
        )
        assert row is not None
        self.outbox_pending.set(row["pending"])
        self.outbox_oldest_age.set(row["oldest"])

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class HttpMetrics:
    """Pure ASGI middleware: counts requests and times them by method, route template and status.

    Outermost, so requests refused by the limits (413, 429) are counted too."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        for candidate in self.routes:  # refused before routing: find the template it would have had
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                return str(getattr(candidate, "path", UNMATCHED_ROUTE))
        return UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = str(scope.get("method", ""))
            route = self._route(scope)
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_duration.labels(method, route).observe(time.perf_counter() - started)
