"""NATS entry point: `iioe.commands.<institution>.register_educator` request–reply (contract section 4).

Answered on the service's own NATS connection (one client per process) in a queue group, so
replicas share the load; up to `max_in_flight` requests are handled at once, and beyond that
the subscription stops reading (back-pressure) instead of piling up tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from iioe.commands import REGISTER_EDUCATOR, CommandRejected, ErrorReply, RegisterEducatorRequest
from iioe.runtime.logging import get_logger
from iioe.runtime.tracing import traced
from iioe.subjects import MAX_EVENT_BYTES, command_filter, command_institution
from services.registration.domain import RegisterEducator
from services.registration.usecases import Registrations

log = get_logger(__name__)
REPLY_HEADERS = {"content-type": "application/json"}


def register_command(subject: str, body: bytes) -> RegisterEducator:
    """The command a request carries, or `CommandRejected` (too large, not JSON, invalid body)."""
    if len(body) > MAX_EVENT_BYTES:
        raise CommandRejected("payload_too_large", f"request of {len(body)} bytes exceeds {MAX_EVENT_BYTES} bytes")
    institution = command_institution(subject)
    if institution is None:
        raise CommandRejected("invalid_request", f"{subject!r} is not a command subject")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandRejected("invalid_json", f"the request is not valid JSON: {exc}") from None
    return RegisterEducator(institution, RegisterEducatorRequest.parse(payload))


async def on_register_educator(registrations: Registrations, subject: str, body: bytes) -> bytes:
    """Register an educator; the reply is `{educator_id, status}` or `{error: {code, message}}`."""
    reply: dict[str, Any]
    try:
        reply = (await registrations.register(register_command(subject, body))).model_dump()
    except CommandRejected as exc:
        log.info("registration rejected", code=exc.code, subject=subject)
        reply = ErrorReply.of(exc.code, exc.message).model_dump()
    except Exception as exc:  # the caller gets an answer, not a timeout
        log.exception("registration failed", subject=subject)
        reply = ErrorReply.of("internal_error", f"registration failed, try again: {type(exc).__name__}").model_dump()
    return json.dumps(reply).encode()


def is_inbox(reply: str) -> bool:
    """Replies go only to inboxes (`_INBOX.` or a user's own `_INBOX_<user>.` prefix)."""
    return reply.startswith(("_INBOX.", "_INBOX_")) and ">" not in reply and "*" not in reply


class CommandResponder:
    """Subscribes the register_educator handler on start; drains in-flight requests on stop."""

    def __init__(self, registrations: Registrations, *, queue: str, max_in_flight: int = 16) -> None:
        self._registrations = registrations
        self._queue = queue
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._nc: NATS | None = None
        self._sub: Subscription | None = None

    async def start(self, nc: NATS) -> None:
        """Subscribe, then flush: once the server has the subscription, a request is answered."""
        self._nc = nc
        self._sub = await nc.subscribe(command_filter(REGISTER_EDUCATOR), queue=self._queue, cb=self._receive)
        await nc.flush()
        log.info("answering commands", subject=self._sub.subject, queue=self._queue)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests; answer the ones already received (bounded by `timeout`)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sub.drain(), timeout)
            self._sub = None
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=timeout)

    def health(self) -> dict[str, Any]:
        """Readiness fact: not ready while nothing is subscribed."""
        subscribed = self._sub is not None
        return {"ok": subscribed, "commands": {"subscribed": subscribed, "in_flight": len(self._in_flight)}}

    async def _receive(self, msg: Msg) -> None:
        await self._slots.acquire()  # blocks this subscription's reader while all slots are busy
        task = asyncio.create_task(self._answer(msg), name="register_educator")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            if not is_inbox(msg.reply):
                # a reply steered at an event subject would publish into the stream as registration
                log.warning("command refused: reply subject is not an inbox", subject=msg.subject, reply=msg.reply)
                return
            with traced(msg.headers, "register_educator"):  # the request's traceparent reaches the events
                reply = await on_register_educator(self._registrations, msg.subject, msg.data)
            assert self._nc is not None
            await self._nc.publish(msg.reply, reply, headers=REPLY_HEADERS)
        except Exception:
            log.exception("could not answer command", subject=msg.subject)
        finally:
            self._slots.release()
