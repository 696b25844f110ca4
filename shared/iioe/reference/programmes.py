"""Reference data: the programme catalogue — which courses earn which micro-certificate.

One file (`programmes.json` beside this module) says which programmes exist, for every reader:
the certification service (which validates it strictly and applies the rules), notifications
(display names), analytics (the courses of the programme its funnel follows) and the simulator.
This module is the pure, read-only view: load, look up, nothing else — no I/O at import time.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iioe.reference.provenance import Provenance, is_provisional

__all__ = [
    "AI_PROGRAMME_ID",
    "PROGRAMMES_FILE",
    "CourseInfo",
    "ProgrammeInfo",
    "load_programmes",
]

PROGRAMMES_FILE = Path(__file__).with_name("programmes.json")
"""The shipped catalogue; operators add programmes with files of the same shape (certification settings)."""

AI_PROGRAMME_ID = "ai-in-higher-education"
"""The programme contract v1 names (section 5) and whose completion analytics reports (section 7)."""

CATALOGUE_VERSION = 1


class _Entry(BaseModel):
    # A view for readers: fields the certification service adds later must not break them.
    model_config = ConfigDict(frozen=True, extra="ignore")


class CourseInfo(_Entry):
    id: str
    titles: dict[str, str] = Field(default_factory=dict)
    """Title per language (`mn`, `en`, `ru`)."""


class ProgrammeInfo(_Entry):
    id: str
    tier: str
    names: dict[str, str] = Field(default_factory=dict)
    """Display name per language (`mn`, `en`, `ru`)."""
    courses: tuple[CourseInfo, ...] = Field(min_length=1)
    min_score: float
    credits: float
    requires: tuple[str, ...] = ()
    framework: str | None = None
    framework_level: str | None = None
    source: str | None = None
    """Where the programme and its courses are documented (URL or citation); see `iioe.reference.provenance`."""
    provisional: bool = False
    source_note: str | None = None
    credits_provenance: Provenance | None = None
    framework_level_provenance: Provenance | None = None

    @property
    def is_provisional(self) -> bool:
        return is_provisional(self.source, self.provisional)

    @property
    def course_ids(self) -> tuple[str, ...]:
        return tuple(course.id for course in self.courses)


def _parse(text: str, source: str) -> dict[str, ProgrammeInfo]:
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("programmes"), list):
        raise ValueError(f"{source}: expected an object with a 'programmes' list")
    if doc.get("version") != CATALOGUE_VERSION:
        raise ValueError(f"{source}: unsupported catalogue version {doc.get('version')!r}")
    out: dict[str, ProgrammeInfo] = {}
    for index, entry in enumerate(doc["programmes"]):
        try:
            programme = ProgrammeInfo.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(f"{source}: invalid programme at index {index}: {exc}") from exc
        if programme.id in out:
            raise ValueError(f"{source}: duplicate programme id {programme.id!r}")
        out[programme.id] = programme
    return out


def load_programmes(path: Path | None = None) -> dict[str, ProgrammeInfo]:
    """The programmes of one catalogue file (default: the shipped one), keyed by id, in file order.

    Raises `ValueError` naming the file when it cannot be read or does not have the catalogue's shape.
    """
    source: Traversable = path if path is not None else resources.files(__package__).joinpath(PROGRAMMES_FILE.name)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{source}: cannot read programme catalogue: {exc}") from exc
    return _parse(text, str(source))
