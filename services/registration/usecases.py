"""The registration application service: commands in, replies out, one transaction per command.

It sees only a unit-of-work port (`ports.py`), so the same code runs on PostgreSQL (`store.py`) and on
the in-memory fake of the unit tests.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from iioe.commands import ChangeRoleReply, CommandRejected, RegisterEducatorReply, RegisterEducatorRequest
from iioe.events import PortfolioEntryAdded, PracticeIntegrationReported, TrainingSessionHeld
from iioe.events.common import Role
from iioe.runtime.logging import get_logger
from services.registration.batching import Batcher
from services.registration.domain import (
    Educator,
    RecordRejected,
    RegisterEducator,
    RegistrationError,
    active_educator,
    add_portfolio_entry,
    attend,
    change_role,
    educator_in_scope,
    erase,
    hold_session,
    new_educator,
    new_educator_id,
    new_record_id,
    parse_record,
    report_practice,
)
from services.registration.ports import EducatorQuery, NewRegistration, Transaction, UnitOfWork

log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChangeRole:
    """Change an educator's role; `institution` is the caller's (None: an operator, any institution)."""

    educator_id: str
    role: Role
    institution: str | None
    actor: str


@dataclass(frozen=True)
class ImportRow:
    """One CSV row's outcome; `row` is the line-of-record number (the header is row 1)."""

    row: int
    outcome: Literal["registered", "already_registered", "error"]
    educator_id: str | None = None
    error: str | None = None
    message: str | None = None


@dataclass
class ImportReport:
    rows: list[ImportRow] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        counts = {"registered": 0, "already_registered": 0, "error": 0}
        for row in self.rows:
            counts[row.outcome] += 1
        return counts


@dataclass(frozen=True)
class RecordOutcome:
    record_id: str
    status: Literal["recorded", "already_recorded"]
    institution: str


class Registrations:
    """Registers educators idempotently per (institution, e-mail)."""

    def __init__(
        self,
        uow: UnitOfWork,
        institutions: Container[str],
        *,
        source: str,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_educator_id,
        batch_size: int = 64,
        batches_at_once: int = 4,
    ) -> None:
        """`batch_size` > 1: concurrent `register` calls share a transaction (`batching.py`); 1: each alone."""
        self._uow = uow
        self._institutions = institutions
        self._source = source
        self._clock = clock
        self._new_id = new_id
        self.batcher: Batcher[NewRegistration, RegisterEducatorReply] | None = None
        if batch_size > 1:
            self.batcher = Batcher(
                self._register_all, name="registration", max_size=batch_size, max_running=batches_at_once
            )

    async def register(self, command: RegisterEducator) -> RegisterEducatorReply:
        """Store the educator and stage EducatorRegistered + EducatorContact — or return the first id."""
        educator = new_educator(command, self._institutions, now=self._clock(), educator_id=self._new_id())
        reply = None
        if self.batcher is not None:
            reply = await self.batcher.submit(NewRegistration(educator, educator.events(), contextvars.copy_context()))
        if reply is None:  # not batched, or its batch failed: alone, with its own error if it has one
            reply = await self._register_alone(educator)
        if reply.status == "registered":
            log.info("educator registered", educator_id=reply.educator_id, institution=educator.institution)
        else:
            log.info("already registered", educator_id=reply.educator_id, institution=educator.institution)
        return reply

    async def _register_all(self, batch: Sequence[NewRegistration]) -> list[RegisterEducatorReply]:
        # one statement stores the educators and stages their events; a second only reads (the ids of
        # e-mails already registered), so no transaction is needed around them
        async with self._uow.statements() as tx:
            found = await tx.register_all(batch, source=self._source)
        return [
            RegisterEducatorReply(educator_id=new.educator.educator_id, status="registered")
            if existing is None
            else RegisterEducatorReply(educator_id=existing, status="already_registered")
            for new, existing in zip(batch, found, strict=True)
        ]

    async def _register_alone(self, educator: Educator) -> RegisterEducatorReply:
        async with self._uow.transaction() as tx:
            if not await tx.educators.add(educator):
                assert educator.email_key is not None, "a new educator always has an e-mail"
                existing = await tx.educators.id_for_email(educator.institution, educator.email_key)
                assert existing is not None, "add() refused but no educator has this e-mail"
                return RegisterEducatorReply(educator_id=existing, status="already_registered")
            for event in educator.events():
                await tx.outbox.enqueue_event(event, source=self._source, subject=educator.educator_id)
        return RegisterEducatorReply(educator_id=educator.educator_id, status="registered")

    async def preview(self, command: RegisterEducator) -> RegisterEducatorReply | None:
        """What `register` would answer, without storing anything: the first id, or None (new)."""
        educator = new_educator(command, self._institutions, now=self._clock(), educator_id="(new)")
        assert educator.email_key is not None
        async with self._uow.transaction() as tx:
            existing = await tx.educators.id_for_email(educator.institution, educator.email_key)
        return RegisterEducatorReply(educator_id=existing, status="already_registered") if existing else None

    async def import_educators(
        self,
        institution: str,
        rows: AsyncIterable[tuple[int, Mapping[str, str]]],
        *,
        dry_run: bool,
        report: ImportReport | None = None,
    ) -> ImportReport:
        """Register each row (idempotent through (institution, e-mail)); a bad row is reported, not fatal.

        A dry run validates every row and says what would happen; nothing is stored or emitted.
        `report` fills as rows are handled (the caller keeps it if reading the rows fails midway)."""
        report = report if report is not None else ImportReport()
        if institution not in self._institutions:
            raise RegistrationError("unknown_institution", f"institution {institution!r} is not in the catalogue")
        planned: set[str] = set()  # e-mail keys a dry run would have registered by now
        async for number, values in rows:
            body = {key: value for key, value in values.items() if value not in ("", None)}
            try:
                command = RegisterEducator(institution, RegisterEducatorRequest.parse(body))
                if dry_run:
                    key = command.request.email.lower()
                    existing = await self.preview(command)
                    if existing is None and key not in planned:
                        planned.add(key)
                        report.rows.append(ImportRow(number, "registered"))
                    else:
                        found = existing.educator_id if existing else None
                        report.rows.append(ImportRow(number, "already_registered", found))
                else:
                    reply = await self.register(command)
                    report.rows.append(ImportRow(number, reply.status, reply.educator_id))
            except CommandRejected as exc:
                report.rows.append(ImportRow(number, "error", error=exc.code, message=exc.message))
        log.info("educators imported", institution=institution, dry_run=dry_run, **report.summary())
        return report

    async def educator(self, educator_id: str) -> Educator | None:
        async with self._uow.transaction() as tx:
            return await tx.educators.get(educator_id)

    async def educators(self, query: EducatorQuery) -> tuple[int, list[Educator]]:
        async with self._uow.transaction() as tx:
            return await tx.educators.search(query)

    async def change_role(self, command: ChangeRole) -> ChangeRoleReply:
        """Set the role; EducatorRoleChanged is staged only when it actually changes."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            found = await tx.educators.get(command.educator_id, lock=True)
            current = educator_in_scope(found, command.educator_id, command.institution)
            updated, event = change_role(current, command.role, now=now)
            if event is None:
                return ChangeRoleReply(educator_id=current.educator_id, role=current.role, status="unchanged")
            await tx.educators.update(updated)
            detail = {"from": current.role, "to": updated.role}
            await tx.audit.record(current.educator_id, "role_changed", actor=command.actor, detail=detail)
            await tx.outbox.enqueue_event(event, source=self._source, subject=current.educator_id)
        log.info("role changed", educator_id=current.educator_id, role=command.role, actor=command.actor)
        return ChangeRoleReply(educator_id=current.educator_id, role=updated.role, status="changed")

    async def erase(self, educator_id: str, *, actor: str) -> tuple[Educator, bool]:
        """Forget the educator's name and e-mail and stage EducatorErased; (educator, erased now?).

        Idempotent: erasing again changes nothing and emits nothing."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            current = educator_in_scope(await tx.educators.get(educator_id, lock=True), educator_id, None)
            updated, event = erase(current, now=now)
            if event is None:
                return current, False
            await tx.educators.update(updated)
            forgotten = await tx.outbox.forget_contacts(educator_id)
            await tx.audit.record(educator_id, "erased", actor=actor, detail={"outbox_contacts_deleted": forgotten})
            await tx.outbox.enqueue_event(event, source=self._source, subject=educator_id)
        log.info("educator erased", educator_id=educator_id, actor=actor)
        return updated, True


class Forbidden(RecordRejected):
    """The caller's institution may not record this (HTTP 403)."""

    def __init__(self, message: str = "this token acts for another institution") -> None:
        super().__init__("forbidden", message)


def _check_scope(scope: str | None, *institutions: str) -> None:
    if scope is not None and scope not in institutions:
        raise Forbidden()


class CascadeRecords:
    """HTTP intake of cascade and portfolio records by institution staff (or operators).

    Each record is validated by its event model, checked against registration's own state
    (known educators, their roles and institutions) and stored with who entered it; the event is
    staged in the same transaction. `scope` is the caller's institution (None: an operator)."""

    def __init__(
        self,
        uow: UnitOfWork,
        institutions: Container[str],
        *,
        source: str,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[str], str] = new_record_id,
    ) -> None:
        self._uow = uow
        self._institutions = institutions
        self._source = source
        self._clock = clock
        self._new_id = new_id

    async def hold_session(self, payload: Mapping[str, Any], *, scope: str | None, actor: str) -> RecordOutcome:
        """TrainingSessionHeld; the same `session_id` with the same content again is `already_recorded`."""
        body = {"session_id": self._new_id("ses"), **payload}
        session = parse_record(TrainingSessionHeld, body)
        _check_scope(scope, session.institution)
        async with self._uow.transaction() as tx:
            teacher = await tx.educators.get(session.master_teacher_id)
            session = hold_session(session, teacher, self._institutions, now=self._clock())
            return await self._store(
                tx, "training_session", session.session_id, session, actor, session.master_teacher_id
            )

    async def attend(
        self, session_id: str, payload: Mapping[str, Any], *, scope: str | None, actor: str
    ) -> RecordOutcome:
        """TraineeAttended, once per (session, educator), on the trainee's institution subject.

        Staff of the session's institution or of the trainee's may record it."""
        educator_id = payload.get("educator_id")
        if not isinstance(educator_id, str) or not educator_id.strip():
            raise RecordRejected("missing_educator_id", "educator_id is required")
        educator_id = educator_id.strip()
        async with self._uow.transaction() as tx:
            stored = await tx.records.get("training_session", session_id)
            session = TrainingSessionHeld.model_validate(stored) if stored is not None else None
            trainee = await tx.educators.get(educator_id)
            attended = attend(session, session_id, trainee, educator_id)
            assert session is not None
            _check_scope(scope, session.institution, attended.institution)
            record_id = f"{session_id}/{educator_id}"
            return await self._store(tx, "attendance", record_id, attended, actor, educator_id)

    async def add_portfolio_entry(
        self, educator_id: str, payload: Mapping[str, Any], *, scope: str | None, actor: str
    ) -> RecordOutcome:
        """PortfolioEntryAdded; the same `entry_id` with the same content again is `already_recorded`."""
        async with self._uow.transaction() as tx:
            educator = await self._educator(tx, educator_id, scope)
            body = {"entry_id": self._new_id("ent"), **payload, "educator_id": educator_id}
            entry = parse_record(PortfolioEntryAdded, {**body, "institution": educator.institution})
            entry = add_portfolio_entry(entry, now=self._clock())
            return await self._store(tx, "portfolio_entry", entry.entry_id, entry, actor, educator_id)

    async def report_practice(
        self, educator_id: str, payload: Mapping[str, Any], *, scope: str | None, actor: str
    ) -> RecordOutcome:
        """PracticeIntegrationReported; every report is a new one (the latest counts)."""
        async with self._uow.transaction() as tx:
            educator = await self._educator(tx, educator_id, scope)
            body = {**payload, "educator_id": educator_id, "institution": educator.institution}
            report = report_practice(parse_record(PracticeIntegrationReported, body), now=self._clock())
            return await self._store(tx, "practice_report", self._new_id("rep"), report, actor, educator_id)

    async def _educator(self, tx: Transaction, educator_id: str, scope: str | None) -> Educator:
        educator = active_educator(await tx.educators.get(educator_id), educator_id)
        _check_scope(scope, educator.institution)
        return educator

    async def _store(
        self, tx: Transaction, kind: str, record_id: str, event: BaseModel, actor: str, subject: str
    ) -> RecordOutcome:
        institution: str = event.institution  # type: ignore[attr-defined]
        data = event.model_dump(mode="json")
        if not await tx.records.add(kind, record_id, institution=institution, data=data, actor=actor):
            if await tx.records.get(kind, record_id) != data:
                raise RecordRejected(f"{kind}_conflict", f"{kind} {record_id!r} exists with other content")
            return RecordOutcome(record_id, "already_recorded", institution)
        await tx.outbox.enqueue_event(event, source=self._source, subject=subject)
        log.info("record added", kind=kind, record_id=record_id, institution=institution, actor=actor)
        return RecordOutcome(record_id, "recorded", institution)
