"""Certification use cases for the events in — registrations and completions — and the issuing they lead to.

Every change to one educator runs in one transaction under that educator's lock, with the inbox claim and
the outgoing events in the same transaction: replicas, redeliveries and replays then all reach the same
single certificate per (educator, programme).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

from iioe.events import CertificateIssued, CourseCompleted, EducatorRegistered
from iioe.events.common import Language
from iioe.reasons import Reason
from iioe.runtime.logging import get_logger
from services.certification import keys
from services.certification.catalogue import Programme
from services.certification.credentials import KeyRing, build_credential_claims, sign_credential, status_entry
from services.certification.domain import (
    STATUS_PURPOSES,
    CertificationError,
    Completion,
    Educator,
    PendingCompletion,
    StatusEntry,
    StatusList,
    StatusPurpose,
    certificate_for,
    certificate_id_for,
    check_institution,
    programmes_to_issue,
    record_attempt,
    sort_pending,
    status_list_id,
    status_list_is_full,
)
from services.certification.ports import Repositories, SharedTransaction
from services.certification.usecases_base import CertificationBase

log = get_logger(__name__)


@dataclass(frozen=True)
class MessageOrigin:
    """Where an event came from: kept with a parked completion, to dead-letter the original bytes later."""

    subject: str
    raw: bytes
    durable: str
    stream: str | None = None
    stream_seq: int | None = None


@dataclass
class _BatchMemo:
    """What stays true for the length of one batch transaction, so each event need not read it again."""

    keyring: KeyRing | None = None
    status_lists: dict[StatusPurpose, tuple[StatusList, int]] = field(default_factory=dict)
    """purpose → (the newest list, entries allocated in it)."""
    issued: list[str] = field(default_factory=list)
    """Programme ids issued in the batch: counted once it commits (a rolled-back batch is retried)."""


class EventsIn(CertificationBase):
    """Registrations and completions in; certificates (and their status list entries) out."""

    _memo: _BatchMemo | None = None
    """Set only on the view a `batch()` hands out."""

    @asynccontextmanager
    async def batch(
        self, educator_ids: Iterable[str], event_keys: Iterable[tuple[str, str]]
    ) -> AsyncIterator[EventsIn]:
        """One transaction for a whole fetched batch: yields a view of this object whose use cases all run in
        it, with every educator of the batch locked up front (sorted, see `ProgressRepository.lock_all`).

        The rules are the same code as one by one; what is saved is a transaction, a commit and a pool
        round trip per event, re-reading the key ring and the newest status lists, and — as the adapter
        chooses (`UnitOfWork.batch`) — a few round trips per event for reads done up front. If anything raises,
        everything rolls back (the consumer then retries the events one by one, each in its own transaction,
        so one refused event is dead-lettered alone)."""
        memo = _BatchMemo()
        async with self._uow.batch(list(educator_ids), list(event_keys)) as tx:
            view = copy.copy(self)
            view._uow = SharedTransaction(tx)
            view._memo = memo
            view._on_issued = memo.issued.append
            yield view
        if self._on_issued is not None:
            for programme_id in memo.issued:
                self._on_issued(programme_id)

    # --- events in -----------------------------------------------------------------------------------

    async def on_educator_registered(self, event_id: str, data: EducatorRegistered, *, source: str = "") -> None:
        """Record the educator, then apply (or reject) completions that arrived before, and issue what is earned.

        `source` + `event_id` are the CloudEvent's identity (the inbox key)."""
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim(event_id, source=source):
                return
            educator = Educator(data.educator_id, data.institution, data.language, data.role, data.registered_at)
            if not await tx.progress.add_educator(educator):
                known = await tx.progress.get_educator(data.educator_id)
                if known is not None and known.institution != data.institution:
                    log.warning(
                        "registration for another institution ignored",
                        educator_id=data.educator_id,
                        known_institution=known.institution,
                    )
                return
            to_apply, to_reject = sort_pending(educator, await tx.progress.take_pending(educator.educator_id))
            for pending in to_reject:
                await self._reject_pending(tx, pending, educator)
            completions = await tx.progress.completions(educator.educator_id)
            for pending in to_apply:
                completions[pending.course_id] = record_attempt(
                    completions.get(pending.course_id), pending.course_id, pending.score, pending.completed_at
                )
                log.info("pending completion applied", educator_id=educator.educator_id, course_id=pending.course_id)
            for course_id in dict.fromkeys(p.course_id for p in to_apply):
                await tx.progress.save_completion(educator.educator_id, completions[course_id])
            await self._issue_earned(tx, educator, completions)

    async def on_course_completed(
        self, event_id: str, data: CourseCompleted, origin: MessageOrigin, *, source: str = ""
    ) -> None:
        """Keep the best attempt; park it if the educator is not registered yet; issue what becomes earned."""
        if not self.catalogue.is_known_course(data.course_id):
            raise CertificationError(
                Reason.UNKNOWN_COURSE, f"course {data.course_id!r} is not in the programme catalogue"
            )
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim(event_id, source=source):
                return
            educator = await tx.progress.get_educator(data.educator_id)
            if educator is None:
                await tx.progress.park(_pending(event_id, data, origin))
                log.info("completion pending registration", decision="pending", educator_id=data.educator_id)
                return
            check_institution(educator, data.institution)
            completions = await tx.progress.completions(data.educator_id)
            completion = record_attempt(completions.get(data.course_id), data.course_id, data.score, data.completed_at)
            await tx.progress.save_completion(data.educator_id, completion)
            await self._issue_earned(tx, educator, {**completions, data.course_id: completion})

    async def _reject_pending(self, tx: Repositories, pending: PendingCompletion, educator: Educator) -> None:
        detail = (
            f"educator {educator.educator_id!r} registered at {educator.institution!r}, but the completion"
            f" (held until registration) names {pending.institution!r}"
        )
        await tx.outbox.add_dead_letter(pending, Reason.INSTITUTION_MISMATCH, detail, datetime.now(UTC))
        log.info(
            "pending completion rejected",
            decision="rejected",
            reason=str(Reason.INSTITUTION_MISMATCH),
            educator_id=educator.educator_id,
            completion_id=pending.event_id,
        )

    async def expire_pending(self, ttl: timedelta, *, limit: int = 500) -> int:
        """Completions parked longer than `ttl` for an educator never registered go to the DLQ
        (`educator_unknown`, the original bytes, re-drivable once the registration exists); how many."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            expired = await tx.progress.take_expired_pending(now - ttl, limit)
            for pending in expired:
                detail = (
                    f"no registration of educator {pending.educator_id!r} arrived within {ttl}; the completion was"
                    " held until then"
                )
                await tx.outbox.add_dead_letter(pending, Reason.EDUCATOR_UNKNOWN, detail, datetime.now(UTC))
                await tx.inbox.release(pending.event_id, source=_source_of(pending.raw))  # re-drivable later
        for pending in expired:
            log.info(
                "parked completion expired",
                decision="dead_lettered",
                reason=str(Reason.EDUCATOR_UNKNOWN),
                educator_id=pending.educator_id,
                completion_id=pending.event_id,
            )
        return len(expired)

    # --- issuing -------------------------------------------------------------------------------------

    async def _issue_earned(self, tx: Repositories, educator: Educator, completions: Mapping[str, Completion]) -> None:
        certificates = await tx.certificates.of_educator(educator.educator_id)
        earned = programmes_to_issue(self.catalogue, completions, certificates)
        if not earned:
            log.debug("progress recorded", educator_id=educator.educator_id)
            return
        keyring = await self._signing_keyring(tx)
        for programme in earned:
            await self._issue(tx, educator, programme, keyring)

    async def _issue(self, tx: Repositories, educator: Educator, programme: Programme, keyring: KeyRing) -> None:
        """Store the certificate; only if (educator, programme) was free, emit CertificateIssued."""
        issued_at = self._clock()
        certificate_id = certificate_id_for(educator.educator_id, programme.id)
        if await tx.certificates.get(certificate_id) is not None:
            log.info("certificate already held", educator_id=educator.educator_id, programme_id=programme.id)
            return
        entries = [await self._allocate_status(tx, certificate_id, purpose, issued_at) for purpose in STATUS_PURPOSES]
        try:
            claims = build_credential_claims(
                certificate_id=certificate_id,
                educator_id=educator.educator_id,
                programme=programme,
                issued_at=issued_at,
                issuer=self.issuer,
                language=cast(Language, educator.language),
                credit_system=self.catalogue.credit_system,
                credential_status=[status_entry(self.status_list_url(e.list_id), e.purpose, e.index) for e in entries],
                criteria_url=self.criteria_url(programme.id),
            )
        except ValueError as exc:  # e.g. an e-mail address used as educator id: never put it in a credential
            raise CertificationError(Reason.INVALID_DATA, f"cannot issue a credential: {exc}") from None
        certificate = certificate_for(
            educator,
            programme,
            issued_at=issued_at,
            kid=keyring.active_kid,
            credential=sign_credential(claims, keyring),
        )
        if not await tx.certificates.add(certificate):  # cannot happen under the educator's lock: roll back, retry
            raise RuntimeError(f"certificate {certificate_id!r} appeared during issuance")
        await tx.outbox.add_event(
            CertificateIssued(
                certificate_id=certificate.certificate_id,
                educator_id=educator.educator_id,
                institution=educator.institution,
                programme_id=programme.id,
                course_ids=list(certificate.course_ids),
                credits=certificate.credits,
                issued_at=issued_at,
                credential=certificate.credential,
            ),
            subject=educator.educator_id,
            event_id=f"certificate-issued:{certificate.certificate_id}",
            time=issued_at,
        )
        log.info(
            "certificate issued",
            decision="issued",
            certificate_id=certificate.certificate_id,
            educator_id=educator.educator_id,
            programme_id=programme.id,
            kid=keyring.active_kid,
        )
        if self._on_issued is not None:
            self._on_issued(programme.id)

    async def _signing_keyring(self, tx: Repositories) -> KeyRing:
        """The key ring (created on first use); read once per batch transaction."""
        if self._memo is not None and self._memo.keyring is not None:
            return self._memo.keyring
        keyring = await keys.ensure_keyring(tx.keys)
        if self._memo is not None:
            self._memo.keyring = keyring
        return keyring

    async def _allocate_status(
        self, tx: Repositories, certificate_id: str, purpose: StatusPurpose, at: datetime
    ) -> StatusEntry:
        """A random unused index in the newest list of `purpose` (a new list once it is half full)."""
        status_list, allocated = await self._newest_status_list(tx, purpose)
        if status_list is None or status_list_is_full(allocated, status_list.size):
            seq = status_list.seq + 1 if status_list else 1
            status_list = await tx.status_lists.create(
                StatusList(status_list_id(purpose, seq), purpose, seq, self._status_list_size, at)
            )
            allocated = await tx.status_lists.allocated(status_list.list_id)
        for _ in range(1000):  # at most half full: a draw fails with p <= 1/2, so 1000 failures never happen
            entry = StatusEntry(certificate_id, purpose, status_list.list_id, self._draw_index(status_list.size))
            if await tx.status_lists.allocate(entry):
                if self._memo is not None:
                    self._memo.status_lists[purpose] = (status_list, allocated + 1)
                return entry
        raise RuntimeError(f"no free index found in status list {status_list.list_id!r}")

    async def _newest_status_list(self, tx: Repositories, purpose: StatusPurpose) -> tuple[StatusList | None, int]:
        """The newest list of `purpose` and how many entries it holds; read once per batch transaction."""
        if self._memo is not None and purpose in self._memo.status_lists:
            return self._memo.status_lists[purpose]
        status_list = await tx.status_lists.newest(purpose)
        return status_list, (await tx.status_lists.allocated(status_list.list_id) if status_list else 0)


def _source_of(raw: bytes) -> str:
    """The CloudEvents `source` of a parked completion's original bytes ('' if unreadable: the id-only key)."""
    try:
        source = json.loads(raw).get("source")
    except (ValueError, AttributeError):
        return ""
    return source if isinstance(source, str) else ""


def _pending(event_id: str, data: CourseCompleted, origin: MessageOrigin) -> PendingCompletion:
    return PendingCompletion(
        event_id=event_id,
        educator_id=data.educator_id,
        institution=data.institution,
        course_id=data.course_id,
        score=data.score,
        completed_at=data.completed_at,
        subject=origin.subject,
        raw=origin.raw,
        durable=origin.durable,
        stream=origin.stream,
        stream_seq=origin.stream_seq,
    )
