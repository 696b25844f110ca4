"""Signed webhooks for partner systems, following Standard Webhooks (https://www.standardwebhooks.com).

Using the published scheme rather than a home-grown one lets partner universities verify our calls
with any Standard Webhooks library. In short: the secret is `whsec_<base64 key>`; the signature is
`v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<raw body>")>`; the headers are
`webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature` (space-separated list, so a
receiver can accept old and new secrets during rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import httpx

from services.notifications.domain import retry_delays
from services.notifications.ports import DeliveryResult
from services.notifications.targets import Target

__all__ = ["DeliveryResult", "HttpWebhookPoster", "deliver", "generate_secret", "retry_delays", "sign", "verify"]

SECRET_PREFIX: Final = "whsec_"
SIGNATURE_VERSION: Final = "v1"
CONTENT_TYPE: Final = "application/cloudevents+json"
USER_AGENT: Final = "IIOE-Webhooks/1.0"
DEFAULT_TOLERANCE_SECONDS: Final = 300
SECRET_BYTES: Final = 32


class WebhookVerificationError(Exception):
    """The request is not provably from us, or is too old/new to trust (possible replay)."""


def generate_secret(num_bytes: int = SECRET_BYTES) -> str:
    """A fresh endpoint secret; the spec asks for 24–64 random bytes."""
    if not 24 <= num_bytes <= 64:
        raise ValueError("Standard Webhooks secrets must be 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(num_bytes)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret must be 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 signature>` over the exact bytes sent, so any re-serialisation breaks it."""
    digest = _signature(_secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> None:
    """Check a received webhook as a partner would; raises `WebhookVerificationError` if not genuine.

    The timestamp window (both directions) limits replays of captured requests; signatures are
    compared in constant time, and any `v1` entry in the header may match (secret rotation).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not raw_timestamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(raw_timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if timestamp < current - tolerance_seconds:
        raise WebhookVerificationError("webhook timestamp is too old")
    if timestamp > current + tolerance_seconds:
        raise WebhookVerificationError("webhook timestamp is too far in the future")
    try:
        key = _secret_key(secret)
    except ValueError as exc:
        raise WebhookVerificationError(str(exc)) from exc
    expected = _signature(key, msg_id, timestamp, body)
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError("no matching webhook signature")


def webhook_headers(secret: str, msg_id: str, body: bytes, now: datetime | float) -> dict[str, str]:
    """Headers for one delivery attempt; each retry re-signs with a fresh timestamp (same `webhook-id`)."""
    timestamp = int(now.timestamp() if isinstance(now, datetime) else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": CONTENT_TYPE,
    }


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    timeout: float = 10.0,
    *,
    now: float | None = None,
    target: Target | None = None,
) -> DeliveryResult:
    """POST one signed webhook; 2xx is success, anything else (including redirects) is a failure.

    Timeouts and connection errors come back as `DeliveryResult(error=...)` rather than exceptions, so
    the caller's retry loop has a single path. Redirects are not followed: a signed delivery should go
    only to the URL the partner registered. With a checked `target` the connection goes to its address
    (no second DNS lookup); `Host` and TLS SNI/certificate checks still use the registered host name.
    """
    headers = webhook_headers(secret, msg_id, body, time.time() if now is None else now)
    headers["user-agent"] = USER_AGENT
    extensions: dict[str, str] = {}
    if target is not None:
        url, host_header = pinned_url(url, target)
        headers["host"] = host_header
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 3)

    try:
        response = await client.post(
            url, content=body, headers=headers, timeout=timeout, follow_redirects=False, extensions=extensions
        )
    except httpx.TimeoutException as exc:
        return DeliveryResult(None, f"timeout after {timeout:g}s: {type(exc).__name__}", False, elapsed())
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return DeliveryResult(None, f"{type(exc).__name__}: {exc}", False, elapsed())
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return DeliveryResult(response.status_code, error, ok, elapsed())


def pinned_url(url: str, target: Target) -> tuple[str, str]:
    """The URL with its host replaced by the checked address, and the `Host` header to send."""
    parsed = httpx.URL(url)
    default = {"http": 80, "https": 443}[target.scheme]
    host_header = target.host if target.port == default else f"{target.host}:{target.port}"
    return str(parsed.copy_with(host=target.address)), host_header


class HttpWebhookPoster:
    """The `WebhookPoster` port over one pooled httpx client, open for as long as the senders run.

    `trust_env=False`: no proxy (or CA bundle) from the environment, so a webhook goes straight to the
    address the target policy checked."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> HttpWebhookPoster:
        self._client = httpx.AsyncClient(trust_env=False)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, target: Target, secret: str, msg_id: str, body: bytes) -> DeliveryResult:
        assert self._client is not None, "use the poster as an async context manager"
        return await deliver(self._client, target.url, secret, msg_id, body, self._timeout, target=target)
