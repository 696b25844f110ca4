"""HTTP limits every service applies: request body size (413) and a per-client rate for
unauthenticated calls (429 with `Retry-After`). Pure ASGI middleware, so a refused request
costs no parsing and never reaches a route.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024
"""Contract §8: request bodies over 64 KiB are refused."""


async def _reply(send: Send, status: int, code: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """413 for a body over `max_bytes`, by its declared length or by what actually arrives.

    A body without a declared length (chunked) is read here, up to the limit, before the app sees it: a
    route's own parsing would turn a failure while reading into a 400, and a route that never reads its
    body would not notice at all. Paths under `exempt` stream their bodies under limits of their own."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, exempt: Sequence[str] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt and scope["path"].startswith(self.exempt)):
            await self.app(scope, receive, send)
            return
        message = f"request body over {self.max_bytes} bytes"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid_content_length", "Content-Length is not a number")
                    return
                if declared > self.max_bytes:
                    await _reply(send, 413, "payload_too_large", message)
                    return
        chunks: list[bytes] = []
        received = 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":  # the client went away
                return
            chunks.append(msg.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                await _reply(send, 413, "payload_too_large", message)
                return
            if not msg.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: disconnects, for streaming responses

        await self.app(scope, replay, send)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class PublicRateLimit:
    """A token bucket per client address for requests without credentials.

    Authenticated callers (partners importing, operators) are not limited here; the public
    endpoints (verification, status lists, aggregate analytics) are, so one client cannot
    starve the others. Operational probes are exempt."""

    def __init__(
        self,
        app: ASGIApp,
        rate_per_second: float,
        burst: int,
        exempt: Sequence[str] = ("/livez", "/readyz", "/healthz", "/metrics"),
        max_clients: int = 10_000,
    ) -> None:
        self.app = app
        self.rate = rate_per_second
        self.burst = burst
        self.exempt = tuple(exempt)
        self.max_clients = max_clients
        self._buckets: dict[str, _Bucket] = {}

    def _take(self, client: str) -> float:
        """0 when allowed, else the seconds until a token is free."""
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._buckets.clear()  # bounded memory; a reset only ever lets more through
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        if any(name == b"authorization" for name, _ in scope.get("headers", ())):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self._take(client)
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            await _reply(
                send, 429, "rate_limited", f"too many requests; retry in {retry}s", [(b"retry-after", retry.encode())]
            )
            return
        await self.app(scope, receive, send)
