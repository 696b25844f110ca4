"""Field types shared by the v1 event schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

InstitutionCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]{2,32}$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
Language = Literal["mn", "en", "ru"]
Role = Literal["educator", "master_teacher"]
Timestamp = AwareDatetime
Score = Annotated[float, Field(ge=0, le=100, strict=True)]
Credits = Annotated[float, Field(ge=0, le=120)]

LANGUAGES: tuple[Language, ...] = ("mn", "en", "ru")
ROLES: tuple[Role, ...] = ("educator", "master_teacher")


class EventData(BaseModel):
    """Base of every `data` model: unknown fields are ignored, so additive changes never break readers."""

    model_config = ConfigDict(extra="ignore", frozen=True)
