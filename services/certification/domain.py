"""Certification rules over plain data: progress, best attempts, issuance, prerequisites, revocation,
recognition limits — and the entities they decide about.

Pure (no I/O): replicas and replays must reach identical decisions from identical inputs, so each rule
is a function of (catalogue, best scores, certificates held) and ids are derived, never random. The
store only persists what these rules decided; its natural keys are a last guard, not the rule.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from services.certification.catalogue import Programme, ProgrammeCatalogue

__all__ = [
    "CERTIFICATE_NAMESPACE",
    "STATUS_LIST_MIN_SIZE",
    "STATUS_PURPOSES",
    "Certificate",
    "CertificateStatus",
    "CertificationError",
    "Completion",
    "CourseProgress",
    "Educator",
    "PendingCompletion",
    "ProgrammeProgress",
    "Recognition",
    "Revocation",
    "StatusChange",
    "StatusEntry",
    "StatusList",
    "StatusPurpose",
    "best_score",
    "certificate_for",
    "certificate_id_for",
    "check_institution",
    "evaluate",
    "held_and_barred",
    "programmes_newly_earned",
    "programmes_to_issue",
    "progress_of",
    "recognition_id_for",
    "recognize",
    "record_attempt",
    "reinstate",
    "revoke",
    "sort_pending",
    "status_bits",
    "status_list_id",
    "status_list_is_full",
    "suspend",
]

# Never change this value: certificate ids already issued (and signed into credentials) derive from it.
CERTIFICATE_NAMESPACE = uuid.UUID("6f1b3c2e-9a4d-5e7f-8b21-4c0d9e3a7f15")


class CertificationError(Exception):
    """A request or event the rules refuse; `code` is machine-readable (handlers and http.py map it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- entities ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Educator:
    """An educator as registration announced them: ids only, no personal data."""

    educator_id: str
    institution: str
    language: str
    role: str
    registered_at: datetime


@dataclass(frozen=True)
class Completion:
    """An educator's record on one course: the best attempt counts, the others are only counted."""

    course_id: str
    best_score: float
    attempts: int
    first_completed_at: datetime
    best_completed_at: datetime


@dataclass(frozen=True)
class PendingCompletion:
    """A completion parked until its educator's registration arrives, with what is needed to dead-letter
    the original message if the registration then disagrees (subject, bytes, consumer, stream position)."""

    event_id: str
    educator_id: str
    institution: str
    course_id: str
    score: float
    completed_at: datetime
    subject: str
    raw: bytes
    durable: str
    stream: str | None
    stream_seq: int | None


@dataclass(frozen=True)
class Revocation:
    certificate_id: str
    reason: str
    revoked_at: datetime
    actor: str | None = None


CertificateStatus = Literal["active", "suspended", "revoked"]
StatusPurpose = Literal["revocation", "suspension"]
STATUS_PURPOSES: tuple[StatusPurpose, ...] = ("revocation", "suspension")


@dataclass(frozen=True)
class StatusChange:
    """One suspension or reinstatement; `seq` numbers a certificate's changes (1, 2, …) and names its event."""

    certificate_id: str
    seq: int
    action: Literal["suspended", "reinstated"]
    reason: str | None
    at: datetime
    actor: str | None = None


@dataclass(frozen=True)
class StatusEntry:
    """A certificate's position in one W3C Bitstring Status List (one entry per purpose)."""

    certificate_id: str
    purpose: StatusPurpose
    list_id: str
    index: int


@dataclass(frozen=True)
class StatusList:
    """One published bitstring: `purpose`, `size` bits, `updated_at` = when a bit last flipped (or creation)."""

    list_id: str
    purpose: StatusPurpose
    seq: int
    size: int
    updated_at: datetime


@dataclass(frozen=True)
class Certificate:
    certificate_id: str
    educator_id: str
    institution: str
    programme_id: str
    course_ids: tuple[str, ...]
    credits: float
    issued_at: datetime
    kid: str
    credential: str
    revocation: Revocation | None = None
    last_change: StatusChange | None = None
    """The latest suspension or reinstatement, if any."""

    @property
    def status(self) -> CertificateStatus:
        if self.revocation is not None:
            return "revoked"
        return "suspended" if self.suspension is not None else "active"

    @property
    def suspension(self) -> StatusChange | None:
        """The suspension in force (a revocation ends it: revoked is final and says all)."""
        if self.revocation is None and self.last_change is not None and self.last_change.action == "suspended":
            return self.last_change
        return None


@dataclass(frozen=True)
class Recognition:
    """A receiving institution's acceptance of (some of) a certificate's credits into one of its programmes."""

    recognition_id: str
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    credits: float
    recognized_at: datetime


# --- completions --------------------------------------------------------------------------------------


def best_score(old: float | None, new: float) -> float:
    """Only the best attempt counts, so a worse retake can never take a pass away."""
    return new if old is None else max(old, new)


def record_attempt(previous: Completion | None, course_id: str, score: float, completed_at: datetime) -> Completion:
    """The course record after one more attempt: best score (and when it was reached), attempts, first date.

    An equal score does not move `best_completed_at`: the earlier attempt reached it first.
    """
    if previous is None:
        return Completion(course_id, score, 1, completed_at, completed_at)
    improved = score > previous.best_score
    return replace(
        previous,
        best_score=best_score(previous.best_score, score),
        attempts=previous.attempts + 1,
        first_completed_at=min(previous.first_completed_at, completed_at),
        best_completed_at=completed_at if improved else previous.best_completed_at,
    )


def check_institution(educator: Educator, institution: str) -> None:
    """A completion must name the institution the educator registered at (subjects are per institution)."""
    if educator.institution != institution:
        raise CertificationError(
            "institution_mismatch",
            f"educator {educator.educator_id!r} is registered at {educator.institution!r}, not {institution!r}",
        )


def sort_pending(
    educator: Educator, pending: Iterable[PendingCompletion]
) -> tuple[list[PendingCompletion], list[PendingCompletion]]:
    """Parked completions, in stream order, split into (to apply, to reject: another institution)."""
    ordered = sorted(pending, key=lambda p: (p.stream_seq or 0, p.event_id))
    return (
        [p for p in ordered if p.institution == educator.institution],
        [p for p in ordered if p.institution != educator.institution],
    )


# --- progress and issuance ------------------------------------------------------------------------------


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
        earned=is_earned(programme, best_scores, held_ids),
    )


def is_earned(programme: Programme, best_scores: Mapping[str, float], held: set[str]) -> bool:
    """Every course passed and every prerequisite held: the issuance rule, on its own because it runs on every
    completion (`evaluate` builds the whole progress report around it)."""
    return all(r in held for r in programme.requires) and all(
        (score := best_scores.get(c)) is not None and score >= programme.min_score for c in programme.course_ids
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
            if is_earned(programme, best_scores, held_now):
                held_now.add(programme.id)
                earned.append(programme)
                changed = True
    return earned


def held_and_barred(certificates: Iterable[Certificate]) -> tuple[set[str], set[str]]:
    """Programmes held (active certificates) and barred (revoked: never earned again, unlock nothing)."""
    certificates = list(certificates)
    held = {c.programme_id for c in certificates if c.revocation is None}
    barred = {c.programme_id for c in certificates if c.revocation is not None}
    return held, barred


def programmes_to_issue(
    catalogue: ProgrammeCatalogue, completions: Mapping[str, Completion], certificates: Iterable[Certificate]
) -> list[Programme]:
    """The issuance rule: what an educator's best scores earn now, given every certificate ever issued to them.

    A programme with any certificate (active or revoked) is never issued again: one per educator and programme.
    """
    held, barred = held_and_barred(certificates)
    scores = {course_id: c.best_score for course_id, c in completions.items()}
    return programmes_newly_earned(catalogue, scores, held, barred=barred)


def progress_of(
    catalogue: ProgrammeCatalogue, completions: Mapping[str, Completion], certificates: Iterable[Certificate]
) -> list[ProgrammeProgress]:
    """Where an educator stands on every programme, prerequisites first."""
    held, _ = held_and_barred(certificates)
    scores = {course_id: c.best_score for course_id, c in completions.items()}
    return [evaluate(p, scores, held) for p in catalogue.in_prerequisite_order()]


def certificate_for(
    educator: Educator, programme: Programme, *, issued_at: datetime, kid: str, credential: str
) -> Certificate:
    """The certificate of an earned programme: derived id, the programme's courses and full credits."""
    return Certificate(
        certificate_id=certificate_id_for(educator.educator_id, programme.id),
        educator_id=educator.educator_id,
        institution=educator.institution,
        programme_id=programme.id,
        course_ids=programme.course_ids,
        credits=programme.credits,
        issued_at=issued_at,
        kid=kid,
        credential=credential,
    )


# --- revocation and recognition ---------------------------------------------------------------------------


def revoke(certificate: Certificate, reason: str, at: datetime, actor: str | None = None) -> tuple[Revocation, bool]:
    """Revoke once, from active or suspended: (the revocation, True) the first time; (the first revocation,
    False) ever after. Revoked is final."""
    if certificate.revocation is not None:
        return certificate.revocation, False
    return Revocation(certificate.certificate_id, reason, at, actor), True


def suspend(
    certificate: Certificate, reason: str | None, at: datetime, actor: str | None = None
) -> tuple[StatusChange, bool]:
    """active → suspended. Suspending a suspended certificate repeats nothing: (the suspension in force, False).
    A revoked certificate cannot be suspended (409 `certificate_revoked`)."""
    _refuse_revoked(certificate, "suspended")
    if certificate.suspension is not None:
        return certificate.suspension, False
    return _change(certificate, "suspended", reason, at, actor), True


def reinstate(
    certificate: Certificate, reason: str | None, at: datetime, actor: str | None = None
) -> tuple[StatusChange, bool]:
    """suspended → active. Repeating a reinstatement returns it again (False); reinstating a certificate that
    was never suspended is refused (409 `certificate_not_suspended`), as is a revoked one (`certificate_revoked`)."""
    _refuse_revoked(certificate, "reinstated")
    last = certificate.last_change
    if last is not None and last.action == "reinstated":
        return last, False
    if last is None:
        raise CertificationError(
            "certificate_not_suspended", f"certificate {certificate.certificate_id!r} is active, not suspended"
        )
    return _change(certificate, "reinstated", reason, at, actor), True


def _refuse_revoked(certificate: Certificate, action: str) -> None:
    if certificate.revocation is not None:
        raise CertificationError(
            "certificate_revoked",
            f"certificate {certificate.certificate_id!r} is revoked (final); it cannot be {action}",
        )


def _change(
    certificate: Certificate,
    action: Literal["suspended", "reinstated"],
    reason: str | None,
    at: datetime,
    actor: str | None,
) -> StatusChange:
    seq = certificate.last_change.seq + 1 if certificate.last_change else 1
    return StatusChange(certificate.certificate_id, seq, action, reason, at, actor)


def status_bits(certificate: Certificate) -> dict[StatusPurpose, bool]:
    """The certificate's bits in its status lists: revocation set once revoked, suspension while suspended."""
    return {"revocation": certificate.revocation is not None, "suspension": certificate.suspension is not None}


# --- status list indexes ------------------------------------------------------------------------------------

STATUS_LIST_MIN_SIZE = 131_072
"""W3C Bitstring Status List: at least 16 KiB (131,072 entries), so one entry hides in a crowd."""
STATUS_LIST_FILL = 0.5
"""A list takes new entries until half full: random unused indexes stay cheap to find and sparse."""


def status_list_id(purpose: StatusPurpose, seq: int) -> str:
    return f"{purpose}-{seq}"


def status_list_is_full(allocated: int, size: int) -> bool:
    return allocated >= int(size * STATUS_LIST_FILL)


def recognize(
    certificate: Certificate,
    receiving_institution: str,
    receiving_programme: str,
    credits: float | None,
    *,
    existing: Recognition | None,
    at: datetime,
) -> tuple[Recognition, bool]:
    """Recognition limits: an active certificate only; never more credits than the certificate carries (all of
    them by default); the same receiving programme again is the same recognition, with other credits a conflict.

    Each receiving programme is judged on its own: two universities may each count the same certificate.
    """
    if certificate.revocation is not None:
        raise CertificationError("certificate_revoked", f"certificate {certificate.certificate_id!r} is revoked")
    if certificate.suspension is not None:
        raise CertificationError("certificate_suspended", f"certificate {certificate.certificate_id!r} is suspended")
    amount = certificate.credits if credits is None else credits
    if amount > certificate.credits:
        raise CertificationError(
            "credits_exceed_certificate",
            f"{amount:g} credits requested, the certificate carries {certificate.credits:g}",
        )
    recognition_id = recognition_id_for(certificate.certificate_id, receiving_institution, receiving_programme)
    if existing is not None:
        if existing.credits != amount:
            raise CertificationError(
                "recognition_conflict", f"already recognised with {existing.credits:g} credits ({recognition_id})"
            )
        return existing, False
    recognition = Recognition(
        recognition_id, certificate.certificate_id, receiving_institution, receiving_programme, amount, at
    )
    return recognition, True


# --- ids -----------------------------------------------------------------------------------------------------


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
