"""W3C trace context across HTTP, NATS requests, the outbox and every consumer (OpenTelemetry API).

The path of one trace:

1. an HTTP request (`TraceMiddleware`) or a NATS request (`continue_trace(msg.headers, …)`) brings a
   `traceparent` header, or starts a new trace;
2. `enqueue_raw` (the outbox) stores the current `traceparent` with the row's headers, and the relay
   publishes them with the message;
3. every consumer continues the trace from the message headers and binds `trace_id` into the
   structlog context, so each log line of the effect carries it — and any event the effect emits
   continues the same trace.

Export is off by default (ids propagate, nothing is recorded, nothing leaves the process). With
`OTEL_EXPORTER_OTLP_ENDPOINT` set and `opentelemetry-exporter-otlp-proto-http` installed (extra
`otlp`), spans are exported by OTLP/HTTP; `OTEL_SDK_DISABLED=true` turns tracing off entirely.
"""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN_CONTEXT, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from iioe.runtime.logging import get_logger

log = get_logger(__name__)
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
_propagator = TraceContextTextMapPropagator()
_configured = False
_recording = False
"""True when spans are recorded (exported): then real SDK spans, otherwise context only."""


def configure_tracing(service: str) -> None:
    """Once per process: export spans by OTLP when asked to (the first service's name is the resource).

    Without export no SDK is installed: trace context still propagates (a new span id per hop, new
    trace ids where none arrives) at a fraction of the cost of recording spans nobody reads.
    """
    global _configured, _recording
    if _configured:
        return
    _configured = True
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        _recording = True  # someone (e.g. `opentelemetry-instrument`) installed a provider: use it
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed (extra 'otlp')")
        return
    name = os.environ.get("OTEL_SERVICE_NAME", service)
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _recording = True
    log.info("exporting traces by OTLP", service=name)


def _tracer() -> trace.Tracer:
    return trace.get_tracer("iioe")


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None outside any trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def inject(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` plus the current `traceparent` (and `tracestate`); unchanged outside a trace or when
    they already carry one."""
    out = dict(headers)
    if TRACEPARENT not in out:
        _propagator.inject(out)
    return out


@contextmanager
def continue_trace(
    headers: Mapping[str, str] | None, name: str, kind: SpanKind = SpanKind.CONSUMER, **attributes: Any
) -> Iterator[dict[str, str]]:
    """A span continuing the trace of `headers` (a new trace without one), current inside the block;
    yields the structlog fields to bind (`{"trace_id": …}`)."""
    parent = _propagator.extract(headers) if headers else None
    if _recording:
        with _tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attributes or None):
            trace_id = current_trace_id()
            yield {"trace_id": trace_id} if trace_id else {}
        return
    incoming = trace.get_current_span(parent).get_span_context() if parent is not None else INVALID_SPAN_CONTEXT
    if incoming.is_valid:
        context = SpanContext(incoming.trace_id, _span_id(), False, incoming.trace_flags, incoming.trace_state)
    else:
        context = SpanContext(_trace_id(), _span_id(), False, TraceFlags(TraceFlags.SAMPLED))
    with trace.use_span(NonRecordingSpan(context), end_on_exit=False):
        yield {"trace_id": format(context.trace_id, "032x")}


def _trace_id() -> int:
    return random.getrandbits(128) or 1


def _span_id() -> int:
    return random.getrandbits(64) or 1


@contextmanager
def traced(headers: Mapping[str, str] | None, name: str, kind: SpanKind = SpanKind.SERVER) -> Iterator[None]:
    """`continue_trace` with `trace_id` bound into the structlog context, for an entry point
    (e.g. a NATS request handler: `with traced(msg.headers, "register_educator"): …`)."""
    with continue_trace(headers, name, kind) as fields, structlog.contextvars.bound_contextvars(**fields):
        yield


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class TraceMiddleware:
    """Pure ASGI middleware: each HTTP request continues its `traceparent` (or starts a trace)."""

    def __init__(self, app: ASGIApp, skip: tuple[str, ...] = ("/metrics", "/livez", "/readyz", "/healthz")) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ()) if k in _TRACE_KEYS}
        with traced(headers, f"HTTP {scope.get('method', '')}"):
            await self.app(scope, receive, send)


_TRACE_KEYS = (TRACEPARENT.encode(), TRACESTATE.encode())
