"""NATS entry points: `iioe.commands.<institution>.register_educator` (contract section 4) and
`iioe.commands.<institution>.change_role` (section 9), request–reply.

Answered on the service's own NATS connection (one client per process), one subscription per
command in a queue group, so replicas share the load; up to `max_in_flight` requests (of all
commands together) are handled at once, and beyond that the subscriptions stop reading
(back-pressure) instead of piling up tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from iioe.commands import (
    CHANGE_ROLE,
    REGISTER_EDUCATOR,
    ChangeRoleRequest,
    CommandRejected,
    ErrorReply,
    RegisterEducatorRequest,
)
from iioe.runtime.logging import get_logger
from iioe.runtime.tracing import traced
from iioe.subjects import MAX_EVENT_BYTES, command_filter, command_institution
from services.registration.domain import RegisterEducator
from services.registration.usecases import ChangeRole, Registrations

log = get_logger(__name__)
REPLY_HEADERS = {"content-type": "application/json"}
CommandHandler = Callable[[Registrations, str, bytes], Awaitable[bytes]]


def _request(subject: str, body: bytes) -> tuple[str, Any]:
    """(institution, decoded JSON) of a request, or `CommandRejected` (too large, not JSON, bad subject)."""
    if len(body) > MAX_EVENT_BYTES:
        raise CommandRejected("payload_too_large", f"request of {len(body)} bytes exceeds {MAX_EVENT_BYTES} bytes")
    institution = command_institution(subject)
    if institution is None:
        raise CommandRejected("invalid_request", f"{subject!r} is not a command subject")
    try:
        return institution, json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommandRejected("invalid_json", f"the request is not valid JSON: {exc}") from None


def register_command(subject: str, body: bytes) -> RegisterEducator:
    """The command a request carries, or `CommandRejected` (too large, not JSON, invalid body)."""
    institution, payload = _request(subject, body)
    return RegisterEducator(institution, RegisterEducatorRequest.parse(payload))


def change_role_command(subject: str, body: bytes) -> ChangeRole:
    """Only educators of the subject's institution; the actor is that institution's partner system."""
    institution, payload = _request(subject, body)
    request = ChangeRoleRequest.parse(payload)
    return ChangeRole(request.educator_id, request.role, institution=institution, actor=f"nats:{institution}")


async def _answer(name: str, subject: str, run: Callable[[], Awaitable[Any]]) -> bytes:
    """The reply JSON: the use case's reply, or `{error: {code, message}}` — never a timeout."""
    reply: dict[str, Any]
    try:
        reply = (await run()).model_dump()
    except CommandRejected as exc:
        log.info(f"{name} rejected", code=exc.code, subject=subject)
        reply = ErrorReply.of(exc.code, exc.message).model_dump()
    except Exception as exc:  # the caller gets an answer, not a timeout
        log.exception(f"{name} failed", subject=subject)
        reply = ErrorReply.of("internal_error", f"{name} failed, try again: {type(exc).__name__}").model_dump()
    return json.dumps(reply).encode()


async def on_register_educator(registrations: Registrations, subject: str, body: bytes) -> bytes:
    """Register an educator; the reply is `{educator_id, status}` or `{error: {code, message}}`."""
    return await _answer("registration", subject, lambda: registrations.register(register_command(subject, body)))


async def on_change_role(registrations: Registrations, subject: str, body: bytes) -> bytes:
    """Change a role; the reply is `{educator_id, role, status}` or `{error: {code, message}}`."""
    return await _answer("role change", subject, lambda: registrations.change_role(change_role_command(subject, body)))


COMMANDS: dict[str, CommandHandler] = {REGISTER_EDUCATOR: on_register_educator, CHANGE_ROLE: on_change_role}


def is_inbox(reply: str) -> bool:
    """Replies go only to inboxes (`_INBOX.` or a user's own `_INBOX_<user>.` prefix)."""
    return reply.startswith(("_INBOX.", "_INBOX_")) and ">" not in reply and "*" not in reply


class CommandResponder:
    """Subscribes one handler per command on start; drains in-flight requests on stop."""

    def __init__(
        self,
        registrations: Registrations,
        *,
        queue: str,
        max_in_flight: int = 16,
        commands: dict[str, CommandHandler] | None = None,
    ) -> None:
        self._registrations = registrations
        self._queue = queue
        self._commands = dict(COMMANDS if commands is None else commands)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._nc: NATS | None = None
        self._subs: dict[str, Subscription] = {}

    async def start(self, nc: NATS) -> None:
        """Subscribe, then flush: once the server has the subscriptions, a request is answered."""
        self._nc = nc
        for name, handler in self._commands.items():
            self._subs[name] = await nc.subscribe(
                command_filter(name), queue=self._queue, cb=self._receiver(name, handler)
            )
        # nats-py writes flush()'s PING straight to the socket, ahead of the SUBs still queued for
        # its flusher task, so the first PONG does not prove the server has them; the second does.
        await nc.flush()
        await nc.flush()
        log.info("answering commands", subjects=[s.subject for s in self._subs.values()], queue=self._queue)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests; answer the ones already received (bounded by `timeout`)."""
        subs, self._subs = list(self._subs.values()), {}
        for sub in subs:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sub.drain(), timeout)
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=timeout)

    def health(self) -> dict[str, Any]:
        """Readiness fact: not ready unless every command is subscribed."""
        subscribed = bool(self._subs) and set(self._subs) == set(self._commands)
        return {
            "ok": subscribed,
            "commands": {"subscribed": subscribed, "names": sorted(self._subs), "in_flight": len(self._in_flight)},
        }

    def _receiver(self, name: str, handler: CommandHandler) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            await self._slots.acquire()  # blocks this subscription's reader while all slots are busy
            task = asyncio.create_task(self._answer(handler, msg), name=name)
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

        return receive

    async def _answer(self, handler: CommandHandler, msg: Msg) -> None:
        try:
            if not is_inbox(msg.reply):
                # a reply steered at an event subject would publish into the stream as registration
                log.warning("command refused: reply subject is not an inbox", subject=msg.subject, reply=msg.reply)
                return
            with traced(msg.headers, msg.subject.rsplit(".", 1)[-1]):  # the request's traceparent reaches the events
                reply = await handler(self._registrations, msg.subject, msg.data)
            assert self._nc is not None
            await self._nc.publish(msg.reply, reply, headers=REPLY_HEADERS)
        except Exception:
            log.exception("could not answer command", subject=msg.subject)
        finally:
            self._slots.release()
