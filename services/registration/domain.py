"""Registration rules: what a valid registration is, and the specific reason when it is not."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, Field

from iioe.events.common import LANGUAGES, ROLES, Language, Role

CLOCK_SKEW = timedelta(minutes=5)
"""A `registered_at` slightly ahead of our clock is accepted: partner clocks drift."""


class RegistrationError(Exception):
    """A registration that cannot be accepted; `code` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RegisterEducatorRequest(BaseModel):
    """The command body of contract section 4 (documented schema; parsing is done by `validate_request`)."""

    full_name: str = Field(min_length=1, max_length=200, examples=["Батын Сарнай"])
    email: str = Field(examples=["sarnai@must.edu.mn"])
    language: Language
    role: Role = "educator"
    registered_at: datetime | None = Field(default=None, description="RFC 3339 with offset, not in the future")


class RegisterEducatorReply(BaseModel):
    educator_id: str
    status: Literal["registered", "already_registered"]


@dataclass(frozen=True)
class ValidRegistration:
    institution: str
    full_name: str
    email: str
    email_key: str
    language: Language
    role: Role
    registered_at: datetime


def new_educator_id() -> str:
    return f"edu-{uuid.uuid4()}"


def validate_request(
    institution: str, payload: Any, known_institutions: Mapping[str, object], now: datetime | None = None
) -> ValidRegistration:
    """Check a raw command payload field by field, so each problem gets its own error code."""
    if institution not in known_institutions:
        raise RegistrationError("unknown_institution", f"institution {institution!r} is not in the catalogue")
    if not isinstance(payload, dict):
        raise RegistrationError("invalid_request", "the request body must be a JSON object")
    full_name = payload.get("full_name")
    if not isinstance(full_name, str) or not full_name.strip():
        raise RegistrationError("missing_full_name", "full_name is required and must be a non-empty string")
    full_name = " ".join(full_name.split())
    if len(full_name) > 200:
        raise RegistrationError("invalid_full_name", "full_name must be at most 200 characters")
    email = payload.get("email")
    if not isinstance(email, str) or not email.strip():
        raise RegistrationError("missing_email", "email is required")
    try:
        normalized = validate_email(email.strip(), check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise RegistrationError("invalid_email", f"email {email!r} is not a valid address: {exc}") from None
    language = payload.get("language")
    if language not in LANGUAGES:
        raise RegistrationError(
            "unsupported_language",
            f"language {language!r} is not supported; use one of {', '.join(LANGUAGES)}",
        )
    role = payload.get("role", "educator")
    if role is None:
        role = "educator"
    if role not in ROLES:
        raise RegistrationError("unknown_role", f"role {role!r} is unknown; use one of {', '.join(ROLES)}")
    registered_at = _registered_at(payload.get("registered_at"), now or datetime.now(UTC))
    return ValidRegistration(
        institution=institution,
        full_name=full_name,
        email=normalized,
        email_key=normalized.lower(),
        language=language,
        role=role,
        registered_at=registered_at,
    )


def _registered_at(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    if not isinstance(value, str):
        raise RegistrationError("invalid_registered_at", "registered_at must be an RFC 3339 timestamp string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RegistrationError("invalid_registered_at", f"registered_at {value!r} is not RFC 3339") from None
    if parsed.tzinfo is None:
        raise RegistrationError("invalid_registered_at", "registered_at must carry a UTC offset, e.g. +08:00")
    if parsed > now + CLOCK_SKEW:
        raise RegistrationError("registered_at_in_future", f"registered_at {value} is in the future")
    return parsed
