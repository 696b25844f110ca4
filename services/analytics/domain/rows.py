"""The projection rules, part 2a: the rows and tables of the in-memory projections (pure: no I/O).

`ProjectionState` (`projection.py`) applies the facts to these tables; the read mixins
(`reports.py`, `dated_reports.py`) query them in the store's shapes.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from services.analytics.domain.facts import (
    Evaluation,
    ProjectionRules,
    Session,
    TransferDecision,
    TransferRequest,
)

MASTER_TEACHER = "master_teacher"

EDUCATOR_COUNT_KEYS = (
    "registered",
    "master_teachers",
    "completed_programme",
    "funnel_started",
    "funnel_completed",
    "funnel_certified",
    "trainees_reached",
    "integrating_ai",
)


@dataclass
class EducatorRow:
    """One educator seen in any event; `registered_at` is None until the registration arrives."""

    institution: str
    role: str | None = None
    registered_at: datetime | None = None
    registered_month: str | None = None
    language: str | None = None
    """The registration's language (the language the educator follows the courses in)."""
    started: bool = False
    programme_courses_done: int = 0
    programme_completed_at: datetime | None = None
    programme_month: str | None = None
    certified: bool = False
    current_role: str | None = None
    """The registration's role, or that of a later EducatorRoleChanged."""
    attended: bool = False
    """Attended at least one training session (a trainee of the cascade)."""
    integrates_ai: bool | None = None
    """What the latest practice report says; None without a report."""

    @property
    def registered(self) -> bool:
        return self.registered_at is not None

    @property
    def master_teacher(self) -> bool:
        return self.registered and self.current_role == MASTER_TEACHER


@dataclass
class CertificateRow:
    """A certificate by id: issued, revoked, or both (a revocation may be known before the issuance)."""

    educator_id: str
    institution: str
    programme_id: str | None = None
    credits: float | None = None
    issued_at: datetime | None = None
    issued_month: str | None = None
    revoked_at: datetime | None = None
    revoked_month: str | None = None
    suspended: bool = False

    @property
    def active(self) -> bool:
        """Issued, not revoked, not suspended."""
        return self.issued_at is not None and self.revoked_at is None and not self.suspended

    @property
    def suspended_now(self) -> bool:
        """Issued, not revoked, and suspended (a revoked certificate counts as revoked only)."""
        return self.issued_at is not None and self.revoked_at is None and self.suspended

    @property
    def revoked(self) -> bool:
        """Revoked and known to have been issued (only those count as revoked)."""
        return self.issued_at is not None and self.revoked_at is not None


@dataclass(frozen=True)
class RecognitionRow:
    certificate_id: str
    educator_id: str
    institution: str
    receiving_institution: str
    credits: float
    recognized_at: datetime
    month: str


class ProjectionTables:
    """The tables of the in-memory projections (what the store keeps in PostgreSQL)."""

    def __init__(self, rules: ProjectionRules) -> None:
        self.rules = rules
        self.educators: dict[str, EducatorRow] = {}
        self.first_completions: dict[str, dict[str, datetime]] = defaultdict(dict)
        """educator → course → first completion (any score)."""
        self.first_completion_languages: dict[tuple[str, str], str | None] = {}
        """(educator, course) → the language of that first completion (None when not sent)."""
        self.completion_counts: Counter[tuple[str, str, str]] = Counter()
        """(institution, course, month) → CourseCompleted events."""
        self.certificates: dict[str, CertificateRow] = {}
        self.recognitions: dict[str, RecognitionRow] = {}
        self.role_changes: dict[str, set[tuple[datetime, str]]] = defaultdict(set)
        """educator → every (changed_at, role) of EducatorRoleChanged."""
        self.status_changes: dict[str, set[tuple[datetime, bool]]] = defaultdict(set)
        """certificate → every (at, suspended) of CertificateSuspended / CertificateReinstated."""
        self.sessions: dict[str, Session] = {}
        self.attendances: set[tuple[str, str]] = set()
        """(session, educator)."""
        self.practice_reports: dict[str, set[tuple[date, bool]]] = defaultdict(set)
        """educator → every (reported_on, integrates_ai)."""
        self.evaluations: dict[tuple[str, str], Evaluation] = {}
        """(educator, course) → the latest evaluation."""
        self.transfer_requests: dict[str, TransferRequest] = {}
        self.transfer_decisions: dict[str, TransferDecision] = {}
