"""Helpers for tests that run services against real servers (used by every package's tests).

They live under `tests/`, outside the installed package: nothing a service imports at run time is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import nats.errors
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Infra:
    """The servers a test runs against (the `infra` fixture of the root conftest)."""

    nats_url: str
    database_url: str
    how: str


def unique_ref(prefix: str = "t") -> str:
    """A short unique token for ids, e-mails and consumer names (tests never collide)."""
    return f"{prefix}{secrets.token_hex(4)}"


def docker_available(image: str = "postgres:17-alpine") -> bool:
    """True when a Docker engine answers and already holds `image` (testcontainers can be used).

    An engine without the image is not enough: where no registry is reachable a pull fails, so
    the tests then use the embedded servers instead."""
    if shutil.which("docker") is None:
        return False
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode != 0:
            return False
        return subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


async def create_database(admin_url: str, name: str) -> str:
    """Create a fresh database next to `admin_url`'s and return its URL."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def running_app(app: FastAPI, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (connections, consumers, relay) and give an HTTP client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    timeout: float = 15.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class StoredMessage:
    subject: str
    data: bytes
    headers: dict[str, str]
    seq: int

    def json(self) -> Any:
        return json.loads(self.data)


async def stream_messages(nc: NATS, stream: str, subject: str, *, timeout: float = 0.5) -> list[StoredMessage]:
    """Every message currently in `stream` on `subject` (an ephemeral ordered read, no side effects).

    The read ends when no further message arrives within `timeout`; any other failure (a closed
    connection, a missing stream) is raised, so a broken read never looks like "no messages".
    """
    js = nc.jetstream()
    sub = await js.subscribe(
        subject, stream=stream, ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    out: list[StoredMessage] = []
    try:
        info = await js.stream_info(stream)
        if info.state.messages == 0:
            return out
        while True:
            try:
                msg = await sub.next_msg(timeout=timeout)
            except nats.errors.TimeoutError:
                break
            out.append(StoredMessage(msg.subject, msg.data, dict(msg.headers or {}), msg.metadata.sequence.stream))
            if msg.metadata.num_pending == 0:
                break  # the last matching message stored so far: no need to wait out the timeout
    finally:
        await sub.unsubscribe()
    return out


class ServiceProcess:
    """A service as its own OS process (`python -m services.<name>`), for crash and restart tests."""

    def __init__(self, name: str, env: dict[str, str], port: int, log_path: Any) -> None:
        self.name = name
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, **extra_env: str) -> ServiceProcess:
        import os
        import sys

        env = {**os.environ, **self.env, **extra_env, f"IIOE_{self.name.upper()}_HTTP_PORT": str(self.port)}
        log = open(self.log_path, "ab")  # the child writes to it for its lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        async def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                async with httpx.AsyncClient(timeout=1.0) as client:
                    return (await client.get(f"{self.base_url}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(healthy, timeout=timeout, interval=0.2, what=f"{self.name} /healthz")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush — a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def completion(event_id: str, institution: str, score: object = 90) -> bytes:
    """A CourseCompleted CloudEvent's bytes, as a partner LMS publishes it (runtime tests need no service)."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:iioe:partner:test-lms",
            "type": "org.iioe.learning.course_completed.v1",
            "time": "2025-04-01T10:00:00+08:00",
            "subject": "edu-1",
            "datacontenttype": "application/json",
            "data": {
                "educator_id": "edu-1",
                "institution": institution,
                "course_id": "genai-fundamentals",
                "score": score,
                "completed_at": "2025-04-01T10:00:00+08:00",
            },
        }
    ).encode()
