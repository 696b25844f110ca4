"""The register-educator use case: one transaction for the educator row and both outgoing events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iioe.events import EducatorContact, EducatorRegistered
from iioe.runtime.logging import get_logger
from iioe.runtime.outbox import enqueue_event
from iioe.runtime.service import ServiceRuntime
from services.registration import store
from services.registration.domain import (
    RegisterEducatorReply,
    ValidRegistration,
    new_educator_id,
    validate_request,
)

log = get_logger(__name__)


class Registrations:
    """Registers educators idempotently per (institution, e-mail)."""

    def __init__(self, runtime: ServiceRuntime, institutions: Mapping[str, object]) -> None:
        self._runtime = runtime
        self.institutions = institutions

    @property
    def pool(self) -> Any:
        return self._runtime.pool

    async def register(self, institution: str, payload: Any) -> RegisterEducatorReply:
        """Validate, then store and emit EducatorRegistered + EducatorContact — or return the first id."""
        reg = validate_request(institution, payload, self.institutions)
        async with self._runtime.transaction() as conn:
            educator_id = await store.insert_educator(conn, new_educator_id(), reg)
            if educator_id is None:
                existing = await store.find_by_email(conn, reg.institution, reg.email_key)
                assert existing is not None
                log.info("already registered", educator_id=existing, institution=institution)
                return RegisterEducatorReply(educator_id=existing, status="already_registered")
            source = self._runtime.settings.source
            for data in self._events(educator_id, reg):
                await enqueue_event(conn, data, source=source, subject=educator_id)
        log.info("educator registered", educator_id=educator_id, institution=institution, role=reg.role)
        return RegisterEducatorReply(educator_id=educator_id, status="registered")

    @staticmethod
    def _events(educator_id: str, reg: ValidRegistration) -> tuple[EducatorRegistered, EducatorContact]:
        """No personal data in EducatorRegistered; name and e-mail travel in EducatorContact only."""
        registered = EducatorRegistered(
            educator_id=educator_id,
            institution=reg.institution,
            language=reg.language,
            role=reg.role,
            registered_at=reg.registered_at,
        )
        contact = EducatorContact(
            educator_id=educator_id,
            institution=reg.institution,
            full_name=reg.full_name,
            email=reg.email,
            language=reg.language,
        )
        return registered, contact
