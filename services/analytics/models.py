"""The analytics outputs (HTTP, snapshots, SSE): ids, codes and counts only — never names or e-mails."""

from __future__ import annotations

from datetime import date, datetime

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
    """English name from the catalogue (None for a code outside it)."""
    name_mn: str | None = None
    name_ru: str | None = None
    """Russian name; the English one where the catalogue holds no reliable translation."""
    educators_registered: int
    course_completions: int
    educators_completed_programme_courses: int
    certificates_issued: int
    """Active certificates (issued and not revoked)."""
    certificates_revoked: int
    master_teachers: int
    """Registered educators whose current role is master_teacher."""
    educators_started: int
    educators_certified: int
    certificates_suspended: int = 0
    """Issued, not revoked, suspended now (not counted in `certificates_issued`)."""
    training_sessions: int = 0
    """Sessions held by this institution's master teachers (the session's institution)."""
    trainees_reached: int = 0
    educators_integrating_ai: int = 0
    course_ratings: int = 0
    courses_rated_highly: int = 0


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
    """Registered educators whose current role (EducatorRegistered, then EducatorRoleChanged) is master_teacher."""
    certificates_suspended: int
    training_sessions: int
    trainees_reached: int
    """Distinct educators who attended at least one training session."""
    educators_integrating_ai: int
    """Distinct educators whose latest practice report says integrates_ai."""
    course_ratings: int
    """Course evaluations; a re-evaluation of the same course by the same educator replaces the earlier one."""
    courses_rated_highly: int
    """Of those, evaluations with both ratings ≥ 4."""
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


class CascadeMasterTeacher(BaseModel):
    """One master teacher in the cascade (an id and counts only)."""

    educator_id: str
    institution: str
    sessions: int
    trainees: int
    """Distinct educators who attended one of their sessions (never themselves)."""
    trainees_completed: int
    """Of those, completed every programme course (any score)."""
    trainees_certified: int
    """Of those, holding an active certificate of the programme."""
    second_generation_reach: int
    """Distinct trainees of their trainees who are master teachers now (the master teacher excluded)."""


class CascadeTotals(BaseModel):
    sessions: int
    trainees: int
    trainees_certified: int


class Cascade(BaseModel):
    """`GET /v1/analytics/cascade` (contract section 10)."""

    master_teachers: list[CascadeMasterTeacher]
    totals: CascadeTotals


class RegionReach(BaseModel):
    region: str
    sessions: int
    trainees: int


class ModeReach(BaseModel):
    mode: str
    sessions: int
    trainees: int


class CascadeDetail(CascadeMasterTeacher):
    """`GET /v1/analytics/cascade/{educator_id}`: one master teacher, by region and by mode."""

    by_region: list[RegionReach]
    by_mode: list[ModeReach]


class TransferStats(BaseModel):
    requests: int
    pending: int
    """Requests without a decision yet."""
    accepted: int
    rejected: int
    acceptance_rate: float
    """accepted / (accepted + rejected); 0 without decisions."""
    credits: float
    """ECTS credits of the accepted transfers."""


class ReceivingInstitutionStats(TransferStats):
    institution: str
    name: str | None


class Recognition(BaseModel):
    """`GET /v1/analytics/recognition`: credit transfers (contract v1.1) and recognitions."""

    transfers: TransferStats
    by_receiving_institution: list[ReceivingInstitutionStats]
    credits_recognized: CreditsRecognized
    generated_at: datetime


class PracticeStats(BaseModel):
    completed_programme: int
    reported: int
    """Educators with at least one practice report."""
    integrating_ai: int
    """Educators whose latest report says integrates_ai."""
    completed_and_integrating: int
    share_of_completed: float
    """completed_and_integrating / completed_programme; 0 when nobody completed."""


class InstitutionPractice(PracticeStats):
    institution: str
    name: str | None


class Practice(BaseModel):
    """`GET /v1/analytics/practice`: AI integration in teaching practice after the programme."""

    overall: PracticeStats
    by_institution: list[InstitutionPractice]
    generated_at: datetime


class CourseFeedback(BaseModel):
    course_id: str
    language: str
    ratings: int
    rated_highly: int
    share_highly: float
    mean_content: float
    mean_usefulness: float


class Feedback(BaseModel):
    """`GET /v1/analytics/feedback`: course evaluations, the latest per educator and course."""

    ratings: int
    rated_highly: int
    share_highly: float
    by_course: list[CourseFeedback]
    generated_at: datetime


class ReportCounts(BaseModel):
    """The dated report's measures, as of the end of `as_of` in the reporting time zone."""

    registered: int
    completed_programme: int
    """Completed every programme course (any score) by then."""
    certified: int
    """Educators holding a programme certificate active then (issued, not revoked, not suspended)."""
    master_teachers: int
    """Registered educators whose role then was master_teacher."""
    credits_recognised: float | None
    """CreditRecognized credits and accepted credit transfers by then (None where not attributable)."""
    trainees_reached: int
    """Educators who attended a training session held by then."""
    integrating_ai: int
    """Educators whose latest practice report by then says integrates_ai."""
    completed_and_integrating: int
    practice_share: float
    """completed_and_integrating / completed_programme."""


class ReportGroup(ReportCounts):
    key: str
    name: str | None = None


class RegionReport(BaseModel):
    region: str
    sessions: int
    trainees: int


class ProgrammeReport(BaseModel):
    programme_id: str
    certificates_active: int


class CourseLanguageReport(BaseModel):
    language: str
    """CourseCompleted.language of each first completion; `unknown` when the partner did not send it."""
    educators: int
    """Educators with at least one course first completed in this language."""
    course_completions: int
    """(educator, course) first completions in this language."""


class TierReport(BaseModel):
    tier: str
    """From the programme catalogue (standalone, foundational, …); `unknown` for a programme outside it."""
    certificates_active: int


class CascadeReach(BaseModel):
    sessions: int
    trainees: int


class DatedReport(BaseModel):
    """`GET /v1/analytics/report?as_of=YYYY-MM-DD`: the state at the end of that day (reporting time zone)."""

    as_of: date
    cutoff: datetime
    """Events with an effective time before this instant count (the next midnight in `timezone`)."""
    timezone: str
    totals: ReportCounts
    cascade: CascadeReach
    by_institution: list[ReportGroup]
    by_type: list[ReportGroup]
    """public / private (from the institution catalogue; `unknown` for codes outside it)."""
    by_city: list[ReportGroup]
    by_language: list[ReportGroup]
    """By the educator's registration language (mn, en, ru); credits are not attributed by language."""
    by_region: list[RegionReport]
    """Training sessions held and distinct trainees, by the session's region."""
    by_programme: list[ProgrammeReport]
    by_tier: list[TierReport]
    """Active certificates by the programme's tier."""
    by_course_language: list[CourseLanguageReport]
    generated_at: datetime
