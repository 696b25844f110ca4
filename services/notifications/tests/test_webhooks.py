"""Standard Webhooks signing checked against an independent implementation and a real HTTP receiver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from services.notifications.targets import Target
from services.notifications.webhooks import (
    CONTENT_TYPE,
    HttpWebhookPoster,
    WebhookVerificationError,
    deliver,
    generate_secret,
    pinned_url,
    retry_delays,
    sign,
    verify,
    webhook_headers,
)

BODY = json.dumps(
    {"specversion": "1.0", "type": "org.iioe.certification.certificate_issued.v1", "data": {"credits": 5}}
).encode()
NOW = 1_750_000_000


def independent_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Straight from the spec text, sharing no code with the module under test."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_") :])
    content = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def test_generated_secrets_are_fresh_and_well_formed() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32


def test_matches_the_published_standard_webhooks_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == expected
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": expected,
    }
    verify(secret, headers, body, now=1614265330)


def test_signature_matches_independent_implementation() -> None:
    secret = generate_secret()
    assert sign(secret, "ntf-1", NOW, BODY) == independent_signature(secret, "ntf-1", NOW, BODY)


def test_headers_verify_and_carry_cloudevents_content_type() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, "ntf-42", BODY, datetime.fromtimestamp(NOW, UTC))
    assert headers == {
        "webhook-id": "ntf-42",
        "webhook-timestamp": str(NOW),
        "webhook-signature": independent_signature(secret, "ntf-42", NOW, BODY),
        "content-type": CONTENT_TYPE,
    }
    verify(secret, headers, BODY, now=NOW + 10)
    verify(secret, httpx.Headers({k.upper(): v for k, v in headers.items()}), BODY, now=NOW)


def test_changed_body_fails() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, "ntf-42", BODY, NOW)
    with pytest.raises(WebhookVerificationError, match="signature"):
        verify(secret, headers, BODY.replace(b"5", b"50"), now=NOW)


def test_wrong_secret_fails() -> None:
    headers = webhook_headers(generate_secret(), "ntf-42", BODY, NOW)
    with pytest.raises(WebhookVerificationError):
        verify(generate_secret(), headers, BODY, now=NOW)


def test_old_and_future_timestamps_fail() -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, "ntf-42", BODY, NOW)
    verify(secret, headers, BODY, tolerance_seconds=300, now=NOW + 300)
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, headers, BODY, tolerance_seconds=300, now=NOW + 301)
    with pytest.raises(WebhookVerificationError, match="future"):
        verify(secret, headers, BODY, tolerance_seconds=300, now=NOW - 301)


def test_any_listed_signature_may_match_during_secret_rotation() -> None:
    old, new = generate_secret(), generate_secret()
    headers = webhook_headers(new, "ntf-42", BODY, NOW)
    headers["webhook-signature"] = f"v1,{base64.b64encode(b'x' * 32).decode()} {sign(old, 'ntf-42', NOW, BODY)}"
    verify(old, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_fails(missing: str) -> None:
    secret = generate_secret()
    headers = webhook_headers(secret, "ntf-42", BODY, NOW)
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(secret, headers, BODY, now=NOW)


class CeilingRandom(random.Random):
    """Always draws the top of the range, exposing the backoff ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_retry_delays_grow_exponentially_up_to_the_cap() -> None:
    ceilings = [retry_delays(n, base=1.0, cap=60.0, rng=CeilingRandom()) for n in range(10)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0, 60.0]
    assert retry_delays(10_000, base=1.0, cap=60.0, rng=CeilingRandom()) == 60.0


def test_retry_delays_are_jittered_within_bounds() -> None:
    rng = random.Random(7)
    for attempt in range(30):
        samples = [retry_delays(attempt, base=0.5, cap=300.0, rng=rng) for _ in range(50)]
        assert all(0.0 <= s <= min(300.0, 0.5 * 2**attempt) for s in samples)
    assert len({retry_delays(5, rng=rng) for _ in range(20)}) > 1  # jitter actually spreads retries
    assert 0.0 <= retry_delays(3) <= 8.0  # default system randomness
    with pytest.raises(ValueError):
        retry_delays(-1)


# --- delivery against a real HTTP server -------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class Receiver:
    base_url: str
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    state = Receiver(base_url=f"http://{host}:{port}")
    statuses = {"/ok": 200, "/accepted": 202, "/fail": 500, "/moved": 307}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            event = await receive()
            body += event.get("body", b"")
            more = event.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        state.requests.append((scope["path"], headers, body))
        status = statuses.get(scope["path"], 404)
        extra = [(b"location", b"/ok")] if status == 307 else []
        await send({"type": "http.response.start", "status": status, "headers": extra})
        await send({"type": "http.response.body", "body": b"thanks"})

    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            assert not task.done(), "receiver failed to start"
            await asyncio.sleep(0.01)
        yield state
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.parametrize("path", ["/ok", "/accepted"])
async def test_deliver_2xx_is_ok_and_the_receiver_can_verify(receiver: Receiver, path: str) -> None:
    secret = generate_secret()
    async with httpx.AsyncClient() as client:
        result = await deliver(client, receiver.base_url + path, secret, "ntf-ok", BODY, timeout=5)

    assert result.ok and result.error is None
    assert result.status_code in (200, 202)
    assert result.duration_ms > 0
    got_path, headers, body = receiver.requests[-1]
    assert got_path == path and body == BODY
    assert headers["content-type"] == CONTENT_TYPE
    assert headers["webhook-id"] == "ntf-ok"
    verify(secret, headers, body)  # what the partner does on their side
    assert headers["webhook-signature"] == independent_signature(
        secret, "ntf-ok", int(headers["webhook-timestamp"]), BODY
    )


async def test_deliver_500_is_an_error(receiver: Receiver) -> None:
    async with httpx.AsyncClient() as client:
        result = await deliver(client, receiver.base_url + "/fail", generate_secret(), "ntf-500", BODY, timeout=5)
    assert not result.ok
    assert result.status_code == 500
    assert result.error is not None and "500" in result.error


async def test_deliver_does_not_follow_redirects(receiver: Receiver) -> None:
    before = len(receiver.requests)
    async with httpx.AsyncClient(follow_redirects=True) as client:
        result = await deliver(client, receiver.base_url + "/moved", generate_secret(), "ntf-307", BODY, timeout=5)
    assert not result.ok and result.status_code == 307
    assert len(receiver.requests) == before + 1


async def test_deliver_connection_refused_is_an_error_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as client:
        result = await deliver(client, f"http://127.0.0.1:{port}/hook", generate_secret(), "ntf-x", BODY, timeout=2)
    assert not result.ok and result.status_code is None
    assert result.error is not None and "ConnectError" in result.error


async def test_deliver_timeout_is_an_error_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await deliver(client, "https://partner.example/hook", generate_secret(), "ntf-t", BODY, timeout=1.5)
    assert not result.ok and result.status_code is None
    assert result.error is not None and result.error.startswith("timeout after 1.5s")


async def test_the_poster_connects_to_the_checked_address_and_ignores_environment_proxies(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`partner.example` does not resolve here: the request can only arrive if it went to the pinned
    address; a proxy from the environment would swallow it (port 9 discards), so it must be ignored."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    port = httpx.URL(receiver.base_url).port
    assert port is not None
    target = Target(f"http://partner.example:{port}/ok?x=1", "http", "partner.example", port, "127.0.0.1")
    secret = generate_secret()
    async with HttpWebhookPoster(5.0) as poster:
        result = await poster.post(target, secret, "ntf-pinned", BODY)
    assert result.ok, result.error
    path, headers, body = receiver.requests[-1]
    assert path == "/ok" and body == BODY and headers["host"] == f"partner.example:{port}"
    verify(secret, headers, body)


def test_a_pinned_url_keeps_path_query_and_port_and_brackets_ipv6() -> None:
    v6 = Target("https://hooks.example.org:8443/in?a=1", "https", "hooks.example.org", 8443, "2001:db8::7")
    assert pinned_url(v6.url, v6) == ("https://[2001:db8::7]:8443/in?a=1", "hooks.example.org:8443")
    v4 = Target("http://hooks.example.org/in", "http", "hooks.example.org", 80, "93.184.216.34")
    assert pinned_url(v4.url, v4) == ("http://93.184.216.34/in", "hooks.example.org")
