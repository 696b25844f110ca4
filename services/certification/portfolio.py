"""Faculty AI Portfolio rules: the read model of an educator's portfolio entries and practice reports, who
owns a portfolio, and the lifecycle of its public share link.

Pure (no I/O), like `domain.py`: the use cases (`portfolio_usecases.py`) load what is stored, ask these rules
what to do and store the answer. The portfolio holds titles, links and dates only (the events carry no
content and no personal data), so a shared bundle never reveals more than the partner published.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, TypeVar

from services.certification.domain import Certificate, CertificationError, Educator

__all__ = [
    "SHARE_ID_BYTES",
    "PortfolioEntry",
    "PortfolioShare",
    "PracticeReport",
    "apply_entry",
    "check_event_institution",
    "close_share",
    "evidence_of",
    "latest_report",
    "open_share",
    "owning_institution",
    "presentable",
    "shared_portfolio",
    "sorted_entries",
    "sorted_reports",
    "visible",
]

_Record = TypeVar("_Record", "PortfolioEntry", "PracticeReport")

SHARE_ID_BYTES = 24
"""Random bytes of a share id (192 bits, 32 URL-safe characters): unguessable, so the link is the capability."""


@dataclass(frozen=True)
class PortfolioEntry:
    """One entry (lesson plan, syllabus change, teaching artefact, reflection), keyed by (educator, entry id)."""

    educator_id: str
    entry_id: str
    institution: str
    kind: str
    title: str
    link: str | None
    added_on: date
    source: str
    """The CloudEvents `source` of the event that last set it (which partner said so)."""
    event_id: str


@dataclass(frozen=True)
class PracticeReport:
    """One report on whether an educator's teaching integrates AI; every report is kept (the latest counts)."""

    source: str
    event_id: str
    educator_id: str
    institution: str
    integrates_ai: bool
    disciplines: tuple[str, ...]
    reported_on: date
    received_seq: int = 0
    """Order of arrival (the store's sequence): breaks ties between reports of the same day."""


@dataclass(frozen=True)
class PortfolioShare:
    """A public link to a signed portfolio bundle; switched off (`revoked_at`) it answers 410 forever."""

    share_id: str
    educator_id: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


# --- events in -------------------------------------------------------------------------------------------


def check_event_institution(educator: Educator | None, institution: str, educator_id: str) -> None:
    """An event about a registered educator must name the institution they registered at (subjects are per
    institution, and a partner may publish only for its own). Unknown educators are accepted: registration
    may come later, and `owning_institution` settles who sees what."""
    if educator is not None and educator.institution != institution:
        raise CertificationError(
            "institution_mismatch",
            f"educator {educator_id!r} is registered at {educator.institution!r}, not {institution!r}",
        )


def apply_entry(existing: PortfolioEntry | None, incoming: PortfolioEntry) -> PortfolioEntry | None:
    """What to store for a (re-)sent entry: the same `entry_id` again corrects it (kind, title, link, date),
    unless it is dated before the stored version (an older version arriving late never overwrites). None: keep
    what is stored."""
    if existing is None:
        return incoming
    if incoming.added_on < existing.added_on:
        return None
    updated = replace(existing, **{f: getattr(incoming, f) for f in ("kind", "title", "link", "added_on")})
    if updated == existing:
        return None
    return replace(updated, source=incoming.source, event_id=incoming.event_id)


# --- reads ---------------------------------------------------------------------------------------------------


def owning_institution(
    educator: Educator | None, entries: Iterable[PortfolioEntry], reports: Iterable[PracticeReport]
) -> str | None:
    """The institution whose token may read and share the portfolio: the registration's when the educator is
    registered, otherwise the one the (earliest) portfolio records name. None: nothing is known."""
    if educator is not None:
        return educator.institution
    dated = sorted(
        [(e.added_on, 0, e.institution) for e in entries]
        + [(r.reported_on, r.received_seq, r.institution) for r in reports]
    )
    return dated[0][2] if dated else None


def visible(institution: str, items: Iterable[_Record]) -> list[_Record]:
    """Records of the owning institution only: one published under another institution before registration
    (which then named a different one) is not shown under this one."""
    return [item for item in items if item.institution == institution]


def sorted_entries(entries: Iterable[PortfolioEntry]) -> list[PortfolioEntry]:
    """Newest first, then by entry id (a stable order for the same day)."""
    return sorted(sorted(entries, key=lambda e: e.entry_id), key=lambda e: e.added_on, reverse=True)


def sorted_reports(reports: Iterable[PracticeReport]) -> list[PracticeReport]:
    """Newest first: by report date, then by arrival."""
    return sorted(reports, key=lambda r: (r.reported_on, r.received_seq, r.event_id), reverse=True)


def latest_report(reports: Iterable[PracticeReport]) -> PracticeReport | None:
    """The report that counts (as in analytics: the latest one says whether practice integrates AI)."""
    ordered = sorted_reports(reports)
    return ordered[0] if ordered else None


def presentable(certificates: Iterable[Certificate]) -> list[Certificate]:
    """Certificates whose credential goes into a shared bundle: all but revoked ones. A suspended credential is
    included; its `credentialStatus` tells the verifier (a bundle is signed when fetched, statuses are live)."""
    return [c for c in certificates if c.status != "revoked"]


# --- the share link ----------------------------------------------------------------------------------------


def open_share(
    current: PortfolioShare | None, new_id: str, educator_id: str, now: datetime
) -> tuple[PortfolioShare, bool]:
    """At most one active link per educator: sharing again answers the active one (False: not new); after a
    switch-off a new, different link is made (the old one stays dead)."""
    if current is not None and current.active:
        return current, False
    return PortfolioShare(new_id, educator_id, now), True


def close_share(current: PortfolioShare | None, now: datetime) -> PortfolioShare | None:
    """The link switched off now; None when there is no active link (switching off again changes nothing)."""
    if current is None or not current.active:
        return None
    return replace(current, revoked_at=now)


def shared_portfolio(share: PortfolioShare | None, share_id: str) -> PortfolioShare:
    """The active share behind a public link, or why not: unknown (404) or switched off (410)."""
    if share is None or share.share_id != share_id:
        raise CertificationError("portfolio_share_not_found", "no such portfolio link")
    if not share.active:
        raise CertificationError("portfolio_share_revoked", "this portfolio link has been switched off")
    return share


# --- Open Badges 3.0 evidence --------------------------------------------------------------------------------

_EVIDENCE_GENRE = {
    "lesson_plan": "Lesson plan",
    "syllabus_change": "Syllabus change",
    "teaching_artefact": "Teaching artefact",
    "reflection": "Reflection",
}


def evidence_of(entries: Sequence[PortfolioEntry], issued_at: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """OB 3.0 `Evidence` objects for a credential issued at `issued_at`: the educator's entries added on or
    before that day (newest first, at most `limit`). Each names the entry; `id` is its link when it has one."""
    chosen = [e for e in sorted_entries(entries) if e.added_on <= issued_at.date()][:limit]
    evidence: list[dict[str, Any]] = []
    for entry in chosen:
        item: dict[str, Any] = {"type": ["Evidence"], "name": entry.title, "genre": _EVIDENCE_GENRE[entry.kind]}
        if entry.link:
            item = {"id": entry.link, **item}
        evidence.append(item)
    return evidence
