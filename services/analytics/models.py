"""The analytics outputs (HTTP, snapshots, SSE): ids, codes and counts only — never names or e-mails."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class FunnelRates(BaseModel):
    started: float
    completed: float
    certified: float


class Funnel(BaseModel):
    """Registered educators → started (≥1 course completed) → completed (all programme courses)
    → certified (an active certificate of that programme). Rates are fractions of `registered`."""

    registered: int
    started: int
    completed: int
    certified: int
    rates: FunnelRates


class InstitutionStats(BaseModel):
    institution: str
    name: str | None
    educators_registered: int
    course_completions: int
    educators_completed_programme_courses: int
    certificates_issued: int
    """Active certificates (issued and not revoked)."""
    certificates_revoked: int
    master_teachers: int
    educators_started: int
    educators_certified: int


class CourseStats(BaseModel):
    course_id: str
    completions: int
    """CourseCompleted events (attempts)."""
    educators: int
    """Distinct educators who completed the course at least once."""


class ProgrammeStats(BaseModel):
    programme_id: str
    certificates_issued: int
    """Active certificates."""
    certificates_revoked: int
    credits_issued: float
    """ECTS credits carried by the active certificates."""


class CreditsRecognized(BaseModel):
    recognitions: int
    credits: float


class Summary(BaseModel):
    """`GET /v1/analytics/summary` and `iioe.analytics.summary` (contract section 7, extended additively)."""

    educators_registered: int
    institutions_active: int
    course_completions: int
    educators_completed_programme_courses: int
    certificates_issued: int
    certificates_revoked: int
    master_teachers: int
    funnel: Funnel
    by_institution: list[InstitutionStats]
    by_course: list[CourseStats]
    by_programme: list[ProgrammeStats]
    credits_recognized: CreditsRecognized
    programme_id: str
    programme_courses: list[str]
    generated_at: datetime


class MonthStats(BaseModel):
    month: str
    registrations: int
    course_completions: int
    programme_completions: int
    certificates_issued: int
    """Certificates issued that month (including ones revoked later)."""
    certificates_revoked: int


class Timeseries(BaseModel):
    months: list[MonthStats]


class InstitutionDetail(InstitutionStats):
    """`GET /v1/analytics/institutions/{code}`."""

    funnel: Funnel
    by_course: list[CourseStats]
    months: list[MonthStats]
    generated_at: datetime


class Ranking(BaseModel):
    rank: int
    institution: str
    name: str | None
    registrations: int


class Rankings(BaseModel):
    """Institutions ranked by new registrations in one month (ties share a rank)."""

    month: str
    rankings: list[Ranking]
