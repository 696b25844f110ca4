"""NATS request–reply: `iioe.commands.<institution>.register_educator` (contract section 4)."""

from __future__ import annotations

import json
from typing import Any

from faststream.nats import NatsMessage, NatsRouter

from iioe.runtime.http import error_body
from iioe.runtime.logging import get_logger
from iioe.subjects import MAX_EVENT_BYTES, REGISTER_EDUCATOR, command_filter, parse_command_subject
from services.registration.domain import RegistrationError
from services.registration.usecases import Registrations

log = get_logger(__name__)
REGISTER_SUBJECT = command_filter(REGISTER_EDUCATOR)


def build_command_router(registrations: Registrations, queue: str) -> NatsRouter:
    router = NatsRouter()

    @router.subscriber(REGISTER_SUBJECT, queue=queue, title="register_educator", max_workers=16)
    async def on_register_educator(msg: NatsMessage) -> dict[str, Any]:
        """Register an educator; replies `{educator_id, status}` or `{error: {code, message}}`."""
        parsed = parse_command_subject(msg.raw_message.subject)
        institution = parsed.institution if parsed else ""  # a subject off the rule is refused as unknown
        return await handle_register_command(registrations, institution, msg.body)

    return router


async def handle_register_command(registrations: Registrations, institution: str, body: bytes) -> dict[str, Any]:
    if len(body) > MAX_EVENT_BYTES:
        return error_body("payload_too_large", f"request of {len(body)} bytes exceeds {MAX_EVENT_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return error_body("invalid_json", f"the request is not valid JSON: {exc}")
    try:
        reply = await registrations.register(institution, payload)
    except RegistrationError as exc:
        log.info("registration rejected", code=exc.code, institution=institution)
        return error_body(exc.code, exc.message)
    except Exception as exc:  # the caller gets an answer, not a timeout
        log.exception("registration failed")
        return error_body("internal_error", f"registration failed, try again: {type(exc).__name__}")
    return reply.model_dump()
