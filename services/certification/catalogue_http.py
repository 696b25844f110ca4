"""Public HTTP view of the programme catalogue, with the provenance of every programme, credit value and level.

`GET /v1/programmes` and `GET /v1/programmes/{programme_id}`: what each programme requires and awards, and for
each of these facts where it comes from (`source`) or that it is `provisional` — so that a receiving university
does not read the platform's assumption (a credit value, a framework level) as a published figure.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from iioe.reference.provenance import Provenance
from iioe.runtime.http import ApiError
from services.certification.catalogue import LocalizedText, Programme, ProgrammeCatalogue


class ProvenanceView(BaseModel):
    source: str | None
    provisional: bool
    """True when marked provisional or when nothing is cited."""
    note: str | None = None


class CourseView(BaseModel):
    course_id: str
    titles: LocalizedText


class ProgrammeView(BaseModel):
    programme_id: str
    tier: str
    names: LocalizedText
    description: LocalizedText
    courses: list[CourseView]
    min_score: float
    credits: float
    credit_system: str
    framework: str
    framework_level: str
    framework_url: str | None
    requires: list[str]
    source: str | None
    """Where the programme and its courses are documented (URL or citation)."""
    provisional: bool
    source_note: str | None
    credits_provenance: ProvenanceView
    framework_level_provenance: ProvenanceView


class ProgrammeListView(BaseModel):
    credit_system: str
    programmes: list[ProgrammeView]


def _provenance(fact: Provenance | None) -> ProvenanceView:
    if fact is None:
        return ProvenanceView(source=None, provisional=True, note="no provenance given in the catalogue")
    return ProvenanceView(source=fact.source, provisional=fact.is_provisional, note=fact.note)


def programme_view(programme: Programme, credit_system: str) -> ProgrammeView:
    return ProgrammeView(
        programme_id=programme.id,
        tier=programme.tier,
        names=programme.names,
        description=programme.description,
        courses=[CourseView(course_id=c.id, titles=c.titles) for c in programme.courses],
        min_score=programme.min_score,
        credits=programme.credits,
        credit_system=credit_system,
        framework=programme.framework,
        framework_level=programme.framework_level,
        framework_url=programme.framework_url,
        requires=list(programme.requires),
        source=programme.source,
        provisional=programme.is_provisional,
        source_note=programme.source_note,
        credits_provenance=_provenance(programme.credits_provenance),
        framework_level_provenance=_provenance(programme.framework_level_provenance),
    )


def build_catalogue_router(catalogue: ProgrammeCatalogue) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/programmes", response_model=ProgrammeListView, tags=["programmes"])
    async def list_programmes() -> ProgrammeListView:
        """Every programme this service certifies (catalogue order), with provenance. Public."""
        return ProgrammeListView(
            credit_system=catalogue.credit_system,
            programmes=[programme_view(p, catalogue.credit_system) for p in catalogue.programmes],
        )

    @router.get("/v1/programmes/{programme_id}", response_model=ProgrammeView, tags=["programmes"])
    async def get_programme(programme_id: str) -> ProgrammeView:
        """One programme with provenance; 404 `programme_not_found`. Public."""
        programme = catalogue.get(programme_id)
        if programme is None:
            raise ApiError(404, "programme_not_found", f"no programme {programme_id!r} in the catalogue")
        return programme_view(programme, catalogue.credit_system)

    return router
