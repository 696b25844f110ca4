"""Plain rules of the notifications service: ids, what goes where, masking, programme names."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from iioe.events import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED, EDUCATOR_REGISTERED
from iioe.runtime.logging import get_logger
from services.notifications.rendering import FALLBACK_LANGUAGE, MessageName, validate_notification_id

log = get_logger(__name__)

EMAIL: Final = "email"

MESSAGE_FOR_TYPE: Final[dict[str, MessageName]] = {
    EDUCATOR_REGISTERED.type: "welcome",
    CERTIFICATE_ISSUED.type: "certificate_issued",
    CERTIFICATE_REVOKED.type: "certificate_revoked",
}
"""Which e-mail each event triggers."""

WEBHOOK_EVENT_TYPES: Final[dict[str, str]] = {
    spec.name: spec.type for spec in (EDUCATOR_REGISTERED, CERTIFICATE_ISSUED, CERTIFICATE_REVOKED)
}
"""Event types a partner may subscribe to, by short name (`certificate_issued`) → CloudEvent type."""

ALL_INSTITUTIONS: Final = "*"


def _digest(*parts: str) -> str:
    # a unit separator cannot occur in ids, so ("a|b", "c") and ("a", "b|c") never collide
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def notification_id(source: str, event_id: str, channel: str, recipient: str) -> str:
    """Stable id of one notification: the same event, channel and recipient always give the same id.

    The recipient is the educator id, not the address, because the address may arrive after the
    event (contact and registration travel on different streams) and must not change the id.
    CloudEvent ids are unique per `source`, so the source is part of the key.
    """
    return validate_notification_id(f"ntf-{_digest(source, event_id, channel, recipient)}")


def delivery_id(webhook_id: str, source: str, event_id: str) -> str:
    """Stable id of one webhook delivery, sent as `webhook-id` so partners can deduplicate retries."""
    return f"msg_{_digest(webhook_id, source, event_id)[:40]}"


def normalise_event_type(value: str) -> str | None:
    """Accept `certificate_issued` or the full CloudEvent type; None when partners cannot subscribe to it."""
    if value in WEBHOOK_EVENT_TYPES.values():
        return value
    return WEBHOOK_EVENT_TYPES.get(value)


def mask_email(address: str | None) -> str | None:
    """`sarnai.b@must.edu.mn` → `s***@must.edu.mn`: enough to recognise, not enough to harvest."""
    if not address:
        return address
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}"


def verify_url(certification_url: str, certificate_id: str) -> str:
    return f"{certification_url.rstrip('/')}/v1/certificates/{certificate_id}"


@dataclass(frozen=True)
class ProgrammeNames:
    """Programme display names per language, read from the certification catalogue file.

    The file is reference data shipped in the repository (`shared/iioe/reference/programmes.json`);
    reading it is not calling the certification service's code or database. Without it, the id is shown.
    """

    names: dict[str, dict[str, str]]

    @classmethod
    def load(cls, path: Path | None) -> ProgrammeNames:
        if path is None or not path.is_file():
            log.info("programme catalogue not found, showing programme ids", path=str(path))
            return cls({})
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            names = {p["id"]: dict(p.get("names", {})) for p in raw.get("programmes", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("programme catalogue unreadable, showing programme ids", path=str(path), error=repr(exc))
            return cls({})
        return cls(names)

    def name(self, programme_id: str | None, language: str) -> str | None:
        if programme_id is None:
            return None
        names = self.names.get(programme_id, {})
        return names.get(language) or names.get(FALLBACK_LANGUAGE) or programme_id
