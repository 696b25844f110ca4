"""Command bodies of contract v1 section 4 (NATS request–reply and HTTP): requests and replies.

The request model *is* the validation: every rule is a validator raising its own error code, so
NATS and HTTP reject a body identically and the documented schema (AsyncAPI/OpenAPI) is this model.
Rules that need the platform's state or clock (institution catalogue, "not in the future") belong
to the service's domain. Pure pydantic: nothing here imports a service or a transport.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from iioe.events.common import LANGUAGES, ROLES, Language, Role

REGISTER_EDUCATOR = "register_educator"
"""Command name: `iioe.commands.<institution>.register_educator`."""
CHANGE_ROLE = "change_role"
"""Command name: `iioe.commands.<institution>.change_role` (contract v1.1 section 9)."""

MAX_FULL_NAME = 200


class CommandRejected(Exception):
    """A command that cannot be accepted; `code` is machine-readable, `message` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorReply(BaseModel):
    """`{"error": {"code", "message"}}` — the reply to any rejected command."""

    error: ErrorDetail

    @classmethod
    def of(cls, code: str, message: str) -> ErrorReply:
        return cls(error=ErrorDetail(code=code, message=message))


class RegisterEducatorRequest(BaseModel):
    """The register_educator command body (contract section 4); unknown fields are ignored."""

    full_name: str = Field(min_length=1, max_length=MAX_FULL_NAME, examples=["Батын Сарнай"])
    email: str = Field(examples=["sarnai@must.edu.mn"])
    language: Language
    role: Role = "educator"
    registered_at: datetime | None = Field(default=None, description="RFC 3339 with offset, not in the future")

    MISSING_CODES: ClassVar[dict[str, str]] = {
        "full_name": "missing_full_name",
        "email": "missing_email",
        "language": "unsupported_language",
    }

    @classmethod
    def parse(cls, payload: Any) -> RegisterEducatorRequest:
        """Validate a decoded JSON body; the first problem becomes a `CommandRejected` with its code."""
        if not isinstance(payload, dict):
            raise CommandRejected("invalid_request", "the request body must be a JSON object")
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise _rejection(exc, cls.MISSING_CODES) from None

    @field_validator("full_name", mode="before")
    @classmethod
    def _full_name(cls, value: Any) -> str:
        """Whitespace runs collapse to one space: "  Батын   Сарнай " is "Батын Сарнай"."""
        if not isinstance(value, str) or not value.strip():
            raise _invalid("missing_full_name", "full_name is required and must be a non-empty string")
        name = " ".join(value.split())
        if len(name) > MAX_FULL_NAME:
            raise _invalid("invalid_full_name", f"full_name must be at most {MAX_FULL_NAME} characters")
        return name

    @field_validator("email", mode="before")
    @classmethod
    def _email(cls, value: Any) -> str:
        """Normalised (domain lower-cased, surrounding whitespace dropped); deliverability is not checked."""
        if not isinstance(value, str) or not value.strip():
            raise _invalid("missing_email", "email is required")
        try:
            return validate_email(value.strip(), check_deliverability=False, test_environment=True).normalized
        except EmailNotValidError as exc:
            raise _invalid("invalid_email", f"email {value!r} is not a valid address: {exc}") from None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if value not in LANGUAGES:
            raise _invalid(
                "unsupported_language", f"language {value!r} is not supported; use one of {', '.join(LANGUAGES)}"
            )
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: Any) -> Any:
        if value is None:
            return "educator"
        if value not in ROLES:
            raise _invalid("unknown_role", f"role {value!r} is unknown; use one of {', '.join(ROLES)}")
        return value

    @field_validator("registered_at", mode="before")
    @classmethod
    def _registered_at(cls, value: Any) -> datetime | None:
        """Only an RFC 3339 string with an offset: a bare number or a local time is ambiguous."""
        if value is None:
            return None
        if not isinstance(value, str):
            raise _invalid("invalid_registered_at", "registered_at must be an RFC 3339 timestamp string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _invalid("invalid_registered_at", f"registered_at {value!r} is not RFC 3339") from None
        if parsed.tzinfo is None:
            raise _invalid("invalid_registered_at", "registered_at must carry a UTC offset, e.g. +08:00")
        return parsed


class RegisterEducatorReply(BaseModel):
    """`{"educator_id", "status"}`; the same e-mail at the same institution always gets the first id."""

    educator_id: str
    status: Literal["registered", "already_registered"]


class ChangeRoleRequest(BaseModel):
    """The change_role command body (contract section 9): an educator of the subject's institution."""

    educator_id: str = Field(min_length=1, max_length=128, examples=["edu-0b6f1c2e-…"])
    role: Role

    MISSING_CODES: ClassVar[dict[str, str]] = {"educator_id": "missing_educator_id", "role": "missing_role"}

    @classmethod
    def parse(cls, payload: Any) -> ChangeRoleRequest:
        if not isinstance(payload, dict):
            raise CommandRejected("invalid_request", "the request body must be a JSON object")
        try:
            return cls.model_validate(payload)
        except ValidationError as exc:
            raise _rejection(exc, cls.MISSING_CODES) from None

    @field_validator("educator_id", mode="before")
    @classmethod
    def _educator_id(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > 128:
            raise _invalid("missing_educator_id", "educator_id is required: a string of 1-128 characters")
        return value.strip()

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, value: Any) -> Any:
        if value not in ROLES:
            raise _invalid("unknown_role", f"role {value!r} is unknown; use one of {', '.join(ROLES)}")
        return value


class ChangeRoleReply(BaseModel):
    """`{"educator_id", "role", "status"}`: `unchanged` when the educator already had the role."""

    educator_id: str
    role: Role
    status: Literal["changed", "unchanged"]


def _invalid(code: str, message: str) -> PydanticCustomError:
    """A validation error whose type is our error code. The message goes in as the one context value:
    pydantic fills placeholders key by key, so a '{' in the caller's input is never interpreted."""
    return PydanticCustomError(code, "{message}", {"message": message})


_CUSTOM_CODES = frozenset(
    {
        "missing_full_name",
        "invalid_full_name",
        "missing_email",
        "invalid_email",
        "unsupported_language",
        "unknown_role",
        "invalid_registered_at",
        "missing_educator_id",
    }
)


def _rejection(exc: ValidationError, missing_codes: dict[str, str]) -> CommandRejected:
    """The first error, with the code its validator chose (or the field's `missing_*` code)."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        return CommandRejected(missing_codes.get(field, "invalid_request"), f"{field} is required")
    if first["type"] in _CUSTOM_CODES:
        return CommandRejected(first["type"], first["msg"])
    return CommandRejected("invalid_request", f"{field}: {first['msg']}")
