"""Programme catalogue and certification rules: plain functions over plain data, no I/O except catalogue files.

Replicas and replays must reach identical decisions from identical inputs, so every rule here is a
pure function of (catalogue, best scores, certificates already held), and certificate ids are derived,
never random.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, model_validator

from iioe.events.common import Language
from iioe.reference.programmes import PROGRAMMES_FILE

__all__ = [
    "BUILTIN_CATALOGUE_PATH",
    "CERTIFICATE_NAMESPACE",
    "CatalogueError",
    "Course",
    "CourseProgress",
    "LocalizedText",
    "Programme",
    "ProgrammeCatalogue",
    "ProgrammeProgress",
    "Tier",
    "best_score",
    "certificate_id_for",
    "evaluate",
    "load_catalogue",
    "programmes_newly_earned",
    "recognition_id_for",
]

BUILTIN_CATALOGUE_PATH = PROGRAMMES_FILE

# Never change this value: certificate ids already issued (and signed into credentials) derive from it.
CERTIFICATE_NAMESPACE = uuid.UUID("6f1b3c2e-9a4d-5e7f-8b21-4c0d9e3a7f15")

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
    def from_file(cls, path: str | Path) -> ProgrammeCatalogue:
        return cls.from_documents([_read(Path(path))])

    @classmethod
    def builtin(cls) -> ProgrammeCatalogue:
        """The catalogue shipped with the service (IIOE AI programme and the digital-pedagogy track)."""
        return cls.from_file(BUILTIN_CATALOGUE_PATH)

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


def load_catalogue(*extra_paths: str | Path) -> ProgrammeCatalogue:
    """The shipped catalogue plus operator files (same format); an operator file may only add programmes."""
    documents = [_read(BUILTIN_CATALOGUE_PATH), *(_read(Path(p)) for p in extra_paths)]
    return ProgrammeCatalogue.from_documents(documents)


def _read(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read catalogue: {exc.strerror or exc}") from None


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


# --- progress rules -------------------------------------------------------------------------------


class CourseProgress(BaseModel):
    model_config = ConfigDict(frozen=True)

    course_id: str
    best_score: float | None
    passed: bool


class ProgrammeProgress(BaseModel):
    """Where an educator stands on one programme; `earned` means every requirement is met now."""

    model_config = ConfigDict(frozen=True)

    programme_id: str
    min_score: float
    courses: tuple[CourseProgress, ...]
    completed_courses: tuple[str, ...]
    below_threshold: tuple[str, ...]
    not_attempted: tuple[str, ...]
    missing_prerequisites: tuple[str, ...]
    already_held: bool
    earned: bool

    @property
    def missing_courses(self) -> tuple[str, ...]:
        """Courses still to pass, in catalogue order (attempted-but-below and never-attempted alike)."""
        return tuple(c.course_id for c in self.courses if not c.passed)


def best_score(old: float | None, new: float) -> float:
    """Only the best attempt counts, so a worse retake can never take a pass away."""
    return new if old is None else max(old, new)


def evaluate(programme: Programme, best_scores: Mapping[str, float], held: Iterable[str]) -> ProgrammeProgress:
    """Progress of one educator on one programme from their best scores and the certificates they hold."""
    held_ids = set(held)
    courses = tuple(_course_progress(programme, course_id, best_scores) for course_id in programme.course_ids)
    missing_prerequisites = tuple(r for r in programme.requires if r not in held_ids)
    return ProgrammeProgress(
        programme_id=programme.id,
        min_score=programme.min_score,
        courses=courses,
        completed_courses=tuple(c.course_id for c in courses if c.passed),
        below_threshold=tuple(c.course_id for c in courses if c.best_score is not None and not c.passed),
        not_attempted=tuple(c.course_id for c in courses if c.best_score is None),
        missing_prerequisites=missing_prerequisites,
        already_held=programme.id in held_ids,
        earned=all(c.passed for c in courses) and not missing_prerequisites,
    )


def _course_progress(programme: Programme, course_id: str, best_scores: Mapping[str, float]) -> CourseProgress:
    score = best_scores.get(course_id)
    return CourseProgress(
        course_id=course_id,
        best_score=score,
        passed=score is not None and score >= programme.min_score,
    )


def programmes_newly_earned(
    catalogue: ProgrammeCatalogue,
    best_scores: Mapping[str, float],
    held: Iterable[str],
    barred: Iterable[str] = (),
) -> list[Programme]:
    """Programmes to certify now, prerequisites first.

    Earning a foundational certificate can make an intermediate one earnable in the same step (its courses
    may already be passed), so this iterates to a fixed point instead of evaluating each programme once.
    `barred` programmes (revoked certificates) are never earned again and satisfy no prerequisite.
    """
    held_now = set(held)
    barred_ids = set(barred)
    earned: list[Programme] = []
    changed = True
    while changed:
        changed = False
        for programme in catalogue.in_prerequisite_order():
            if programme.id in held_now or programme.id in barred_ids:
                continue
            if evaluate(programme, best_scores, held_now).earned:
                held_now.add(programme.id)
                earned.append(programme)
                changed = True
    return earned


def certificate_id_for(educator_id: str, programme_id: str) -> str:
    """One certificate per (educator, programme), derived so replicas and replays agree without coordination."""
    name = json.dumps([educator_id, programme_id], ensure_ascii=False, separators=(",", ":"))
    return f"cert-{uuid.uuid5(CERTIFICATE_NAMESPACE, name)}"


def recognition_id_for(certificate_id: str, receiving_institution: str, receiving_programme: str) -> str:
    """One recognition per (certificate, receiving institution, receiving programme), so a retried request is
    recognised as the same one."""
    name = json.dumps(
        ["recognition", certificate_id, receiving_institution, receiving_programme],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return f"rec-{uuid.uuid5(CERTIFICATE_NAMESPACE, name)}"
