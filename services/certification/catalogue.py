"""The programme catalogue: programmes, their courses, thresholds, credits and prerequisites.

Pure: it is validated from JSON text (`reference.py` reads the files). Catalogue documents are
edited by hand, so every mistake — a typo'd key, an unknown prerequisite, a cycle, a course
described two ways — is an error naming its source and field, never a silently odd programme.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from iioe.events.common import Language
from iioe.reference.provenance import Citation, Provenance, is_provisional

__all__ = [
    "CatalogueError",
    "Course",
    "LocalizedText",
    "Programme",
    "ProgrammeCatalogue",
    "Tier",
]

Tier = Literal["foundational", "intermediate", "advanced", "standalone"]
ProgrammeId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
# Course ids come from partner LMSs, so they are looser than programme ids (still URN-safe after quoting).
CourseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class CatalogueError(ValueError):
    """The catalogue cannot be used; the message names the file and every offending field."""


class _Frozen(BaseModel):
    """Catalogue documents are edited by hand, so unknown keys (typos) are errors, not silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalizedText(_Frozen):
    """A text in every platform language; all three are required so no certificate shows a gap."""

    mn: Text
    en: Text
    ru: Text

    def get(self, language: Language) -> str:
        value: str = getattr(self, language)
        return value

    def items(self) -> list[tuple[Language, str]]:
        return [("mn", self.mn), ("en", self.en), ("ru", self.ru)]


class Course(_Frozen):
    id: CourseId
    titles: LocalizedText


class Programme(_Frozen):
    """A micro-certificate: pass every course at `min_score` (best attempt) and hold every `requires` certificate."""

    id: ProgrammeId
    tier: Tier
    names: LocalizedText
    description: LocalizedText
    courses: tuple[Course, ...] = Field(min_length=1)
    min_score: float = Field(gt=0, le=100)
    credits: float = Field(gt=0, le=120)
    framework: ShortText
    framework_level: ShortText
    # Official page of the framework level, if one exists; credentials fall back to a URN otherwise.
    framework_url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=500)] | None = None
    requires: tuple[ProgrammeId, ...] = ()
    # Provenance (optional; `iioe.reference.provenance`): the programme's citation, its credit value's, its level's.
    source: Citation | None = None
    provisional: bool = False
    source_note: Citation | None = None
    credits_provenance: Provenance | None = None
    framework_level_provenance: Provenance | None = None

    @property
    def is_provisional(self) -> bool:
        return is_provisional(self.source, self.provisional)

    @model_validator(mode="after")
    def _check_references(self) -> Self:
        _reject_duplicates("course", [c.id for c in self.courses], where=f"programme {self.id!r}")
        _reject_duplicates("prerequisite", list(self.requires), where=f"programme {self.id!r}")
        if self.id in self.requires:
            raise ValueError(f"programme {self.id!r} requires itself")
        return self

    @property
    def course_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.courses)


class _CatalogueDocument(_Frozen):
    """One catalogue file; cross-file rules (unknown prerequisites, cycles) are checked after merging."""

    version: Literal[1]
    credit_system: ShortText = "ECTS"
    programmes: tuple[Programme, ...]


class ProgrammeCatalogue(_Frozen):
    """Every programme the service certifies, validated as a whole and indexed for per-event lookups."""

    credit_system: ShortText = "ECTS"
    programmes: tuple[Programme, ...]

    _by_id: dict[str, Programme] = PrivateAttr(default_factory=dict)
    _by_course: dict[str, tuple[Programme, ...]] = PrivateAttr(default_factory=dict)
    _courses: dict[str, Course] = PrivateAttr(default_factory=dict)
    _order: tuple[Programme, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _check_and_index(self) -> Self:
        _reject_duplicates("programme", [p.id for p in self.programmes], where="the catalogue")
        self._by_id = {p.id: p for p in self.programmes}
        for programme in self.programmes:
            unknown = [r for r in programme.requires if r not in self._by_id]
            if unknown:
                raise ValueError(f"programme {programme.id!r} requires unknown programme(s): {', '.join(unknown)}")
        self._order = _prerequisite_order(self.programmes)
        self._courses = _index_courses(self.programmes)
        by_course: dict[str, list[Programme]] = {}
        for programme in self.programmes:
            for course_id in programme.course_ids:
                by_course.setdefault(course_id, []).append(programme)
        self._by_course = {k: tuple(v) for k, v in by_course.items()}
        return self

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "<string>") -> ProgrammeCatalogue:
        return cls.from_documents([(source, text)])

    @classmethod
    def from_documents(cls, documents: Sequence[tuple[str, str | bytes]]) -> ProgrammeCatalogue:
        """Merge (source name, JSON text) documents; programmes may require programmes of earlier documents."""
        parsed = [_parse_document(source, text) for source, text in documents]
        if not parsed:
            raise CatalogueError("no catalogue documents given")
        systems = {doc.credit_system for doc in parsed}
        sources = ", ".join(source for source, _ in documents)
        if len(systems) > 1:
            raise CatalogueError(f"{sources}: documents disagree on credit_system: {', '.join(sorted(systems))}")
        programmes = tuple(p for doc in parsed for p in doc.programmes)
        try:
            return cls(credit_system=parsed[0].credit_system, programmes=programmes)
        except ValidationError as exc:
            raise CatalogueError(_describe(sources, exc)) from None

    def get(self, programme_id: str) -> Programme | None:
        return self._by_id.get(programme_id)

    def programme(self, programme_id: str) -> Programme:
        try:
            return self._by_id[programme_id]
        except KeyError:
            raise KeyError(f"unknown programme {programme_id!r}") from None

    def course(self, course_id: str) -> Course | None:
        return self._courses.get(course_id)

    def is_known_course(self, course_id: str) -> bool:
        return course_id in self._courses

    def programmes_for_course(self, course_id: str) -> tuple[Programme, ...]:
        """Programmes a result for this course can advance; empty for unknown courses."""
        return self._by_course.get(course_id, ())

    def in_prerequisite_order(self) -> tuple[Programme, ...]:
        """Every programme after its prerequisites; otherwise catalogue order (stable, deterministic)."""
        return self._order


def _parse_document(source: str, text: str | bytes) -> _CatalogueDocument:
    try:
        raw: Any = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"{source}: not valid JSON: {exc}") from None
    try:
        return _CatalogueDocument.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(_describe(source, exc)) from None


def _describe(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid programme catalogue ({exc.error_count()} error(s))"]
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        lines.append(f"  {where or '<catalogue>'}: {err['msg']}")
    return "\n".join(lines)


def _reject_duplicates(kind: str, ids: Sequence[str], where: str) -> None:
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise ValueError(f"duplicate {kind} id(s) in {where}: {', '.join(duplicates)}")


def _prerequisite_order(programmes: Sequence[Programme]) -> tuple[Programme, ...]:
    """Kahn's algorithm, picking the earliest catalogue entry first so the order never depends on hashing."""
    placed: set[str] = set()
    order: list[Programme] = []
    remaining = list(programmes)
    while remaining:
        ready = next((p for p in remaining if placed.issuperset(p.requires)), None)
        if ready is None:
            cycle = ", ".join(p.id for p in remaining)
            raise ValueError(f"prerequisite cycle among programmes: {cycle}")
        order.append(ready)
        placed.add(ready.id)
        remaining.remove(ready)
    return tuple(order)


def _index_courses(programmes: Iterable[Programme]) -> dict[str, Course]:
    """A course may count towards several programmes, but it must be described identically everywhere."""
    courses: dict[str, Course] = {}
    for programme in programmes:
        for course in programme.courses:
            known = courses.setdefault(course.id, course)
            if known != course:
                raise ValueError(f"course {course.id!r} has different titles in different programmes")
    return courses
