"""Field types shared by the v1 event schemas."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string with an offset (or a datetime): no Unix numbers, no other formats."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339_RE.fullmatch(value)):
        return value
    raise ValueError("expected an RFC 3339 timestamp with an offset, e.g. 2025-04-02T15:00:00+08:00")


def _day(value: Any) -> Any:
    """Only a `YYYY-MM-DD` string (or a date that is not a datetime)."""
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _DAY_RE.fullmatch(value)
    ):
        return value
    raise ValueError("expected a date YYYY-MM-DD")


def _number(value: Any) -> Any:
    """A JSON number (int or float; Decimal from a database), never a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError("expected a number")
    return value


InstitutionCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,32}$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
"""A short label that is not about a person (a programme, region, discipline or entry title)."""
ReasonText = Annotated[str, StringConstraints(min_length=1, max_length=500)]
"""An operator's reason code or short explanation; never personal data."""
Language = Literal["mn", "en", "ru"]
Role = Literal["educator", "master_teacher"]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
"""RFC 3339 with an offset (`2025-04-02T15:00:00+08:00`); the offset is kept."""
Day = Annotated[date, BeforeValidator(_day)]
"""A calendar date, `YYYY-MM-DD`."""
Score = Annotated[float, Field(ge=0, le=100, strict=True)]
Credits = Annotated[float, Field(ge=0, le=120), BeforeValidator(_number)]
"""ECTS credits: a non-negative JSON number."""
Rating = Annotated[int, Field(ge=1, le=5, strict=True)]
"""An integer 1–5."""
Link = Annotated[str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s]+$")]
"""An http(s) URL, kept exactly as sent."""

LANGUAGES: tuple[Language, ...] = ("mn", "en", "ru")
ROLES: tuple[Role, ...] = ("educator", "master_teacher")


class EventData(BaseModel):
    """Base of every `data` model: unknown fields are ignored, so additive changes never break readers."""

    model_config = ConfigDict(extra="ignore", frozen=True)
