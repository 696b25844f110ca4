"""Real local servers for notifications tests: an SMTP relay (aiosmtpd) and an HTTP partner receiver.

They are real servers on free ports (not mocks), so the service's SMTP client and HTTP client
exercise the network exactly as in production.
"""

from __future__ import annotations

import asyncio
import email
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response

from iioe_tools.embedded import free_port


class SmtpCapture:
    """Accepts every message; messages to an address in `hold` wait until released, then get a 451."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.hold: set[str] = set()
        self.held = 0
        self._release = threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold & set(envelope.rcpt_tos):
            self.held += 1
            await asyncio.to_thread(self._release.wait)  # the sender waits for our answer: "sending" in its DB
            return "451 4.3.0 held by the test, not accepted"
        parsed = email.message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def release(self) -> None:
        self.hold.clear()
        self._release.set()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in list(self.messages) if m["To"] == address]


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpCapture, int]]:
    handler = SmtpCapture()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release()
        controller.stop()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A partner's webhook endpoint plus a fake certification verification endpoint."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    in_flight: int = 0

    def to(self, path: str) -> list[Received]:
        return [r for r in list(self.requests) if r.path == path]


def receiver_app(receiver: Receiver, slow_seconds: float) -> FastAPI:
    app = FastAPI()

    @app.post("/hooks/{name}")
    async def hook(name: str, request: Request) -> Response:
        body = await request.body()
        receiver.requests.append(Received(f"/hooks/{name}", dict(request.headers), body, time.monotonic()))
        if name == "fail":
            return Response(status_code=500)
        if name == "slow":
            receiver.in_flight += 1
            try:
                await asyncio.sleep(slow_seconds)
            finally:
                receiver.in_flight -= 1
        return Response(status_code=204)

    @app.get("/verify/{certificate_id}")
    async def certificate(certificate_id: str) -> dict[str, str]:
        return {"certificate_id": certificate_id, "status": "active"}

    return app


@asynccontextmanager
async def http_receiver(slow_seconds: float = 30.0) -> AsyncIterator[Receiver]:
    """A uvicorn server on a free port, in the test's event loop."""
    port = free_port()
    receiver = Receiver(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(
        receiver_app(receiver, slow_seconds), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
