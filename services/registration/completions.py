"""CSV import of course completions (`POST /v1/completions/import`): each valid row becomes a
CourseCompleted staged in registration's outbox, idempotently (one transaction per row)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from iioe.commands import CommandRejected
from iioe.events import CourseCompleted
from iioe.runtime.logging import get_logger
from services.registration.domain import RecordRejected, completion_event_id, import_completion, parse_completion
from services.registration.ports import UnitOfWork
from services.registration.usecases import utc_now

log = get_logger(__name__)


@dataclass(frozen=True)
class CompletionRow:
    """One CSV row's outcome; `row` is the line-of-record number (the header is row 1)."""

    row: int
    outcome: Literal["published", "already_published", "error"]
    event_id: str | None = None
    error: str | None = None
    message: str | None = None


@dataclass
class CompletionReport:
    rows: list[CompletionRow] = field(default_factory=list)
    on_row: Callable[[CompletionRow], None] | None = None
    """Told of each row as soon as it is handled (the HTTP layer streams them as progress)."""

    def add(self, row: CompletionRow) -> None:
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)

    def summary(self) -> dict[str, int]:
        counts = {"published": 0, "already_published": 0, "error": 0}
        for row in self.rows:
            counts[row.outcome] += 1
        return counts


COMPLETION_KIND = "course_completion"
"""`records.kind` of imported completions; `record_id` is the event id (see `completion_event_id`)."""
PROGRESS_EVERY = 1000
"""An import logs its progress every this many rows (INFO per batch, never per row)."""


class CompletionImports:
    """CSV import of course completions by institution staff (or operators): each valid row is a
    CourseCompleted of that institution, staged in registration's outbox with an id derived from
    its natural key, so importing it again publishes nothing."""

    def __init__(
        self,
        uow: UnitOfWork,
        institutions: Container[str],
        *,
        source: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._uow = uow
        self._institutions = institutions
        self._source = source
        self._clock = clock

    async def import_completions(
        self,
        institution: str,
        rows: AsyncIterable[tuple[int, Mapping[str, str]]],
        *,
        dry_run: bool,
        actor: str,
        report: CompletionReport | None = None,
    ) -> CompletionReport:
        """Publish each row (one transaction per row); a bad row is reported, not fatal.

        A dry run validates every row (the educator included) and says what would happen — a
        completion repeated in the same file is `already_published` — and stores nothing.
        `report` fills as rows are handled (the caller keeps it if reading the rows fails midway)."""
        report = report if report is not None else CompletionReport()
        if institution not in self._institutions:
            raise RecordRejected("unknown_institution", f"institution {institution!r} is not in the catalogue")
        planned: set[str] = set()  # event ids a dry run would have published by now
        async for number, values in rows:
            try:
                completion = parse_completion(institution, values)
                event_id = completion_event_id(completion)
                if dry_run:
                    known = await self._check(completion, event_id)
                    outcome: Literal["published", "already_published"] = (
                        "already_published" if known or event_id in planned else "published"
                    )
                    planned.add(event_id)
                else:
                    outcome = await self._publish(completion, event_id, actor)
                report.add(CompletionRow(number, outcome, event_id))
            except CommandRejected as exc:
                report.add(CompletionRow(number, "error", error=exc.code, message=exc.message))
            if len(report.rows) % PROGRESS_EVERY == 0:
                log.info("completions import progress", institution=institution, dry_run=dry_run, **report.summary())
        log.info("completions imported", institution=institution, dry_run=dry_run, actor=actor, **report.summary())
        return report

    async def _check(self, completion: CourseCompleted, event_id: str) -> bool:
        """Validate against the stored state; True when this completion was imported before."""
        async with self._uow.transaction() as tx:
            import_completion(completion, await tx.educators.get(completion.educator_id), now=self._clock())
            return await tx.records.get(COMPLETION_KIND, event_id) is not None

    async def _publish(
        self, completion: CourseCompleted, event_id: str, actor: str
    ) -> Literal["published", "already_published"]:
        async with self._uow.transaction() as tx:
            educator = await tx.educators.get(completion.educator_id)
            completion = import_completion(completion, educator, now=self._clock())
            data = completion.model_dump(mode="json")
            added = await tx.records.add(
                COMPLETION_KIND, event_id, institution=completion.institution, data=data, actor=actor
            )
            if not added:
                return "already_published"
            await tx.outbox.enqueue_event(
                completion, source=self._source, subject=completion.educator_id, event_id=event_id, actor=actor
            )
        return "published"
