"""Rebuilding certification from the event log (#10 item 5): an empty database is refilled from IIOE_EVENTS.

`IIOE_EVENTS` is kept for years and holds everything this service ever decided — its own events carry
each certificate with its signed credential, each revocation, suspension and recognition — and everything
it decided from (registrations, completions). So a lost database is not lost certificates:

1. read the log once: the first registration of each educator, and this service's own decisions
   (events whose `source` is ours);
2. apply the registrations (the educators), then store the certificates exactly as issued — the credential
   byte-identical, never re-signed — with their revocations, suspensions and recognitions;
3. replay the completions through the ordinary use case: best attempts and progress are rebuilt, and since
   every earned programme already has its certificate, nothing is issued again (no second CertificateIssued).

The replayed events are claimed in the inbox, so the ordinary consumer skips them afterwards. Signing keys
are not in the log: restore them first with `iioe certification keys import` (or keep the KEK and a backup).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from iioe.access import RESTORE_CONSUMER
from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    COURSE_COMPLETED,
    CREDIT_RECOGNIZED,
    EDUCATOR_REGISTERED,
    CertificateIssued,
    CertificateRevoked,
    CourseCompleted,
    CreditRecognized,
    EducatorRegistered,
)
from iioe.parsing import InvalidEvent, parse_event
from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.logging import get_logger
from iioe.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from services.certification.domain import Certificate, CertificationError, Educator, Recognition, Revocation
from services.certification.ports import Repositories, UnitOfWork
from services.certification.usecases import Certification, MessageOrigin

log = get_logger(__name__)

LogReader = Callable[[], AsyncIterator[ReceivedEvent]]
"""Reads the log from its start (called once per pass)."""
OwnEventApplier = Callable[[Repositories, ReceivedEvent], Awaitable[None]]
"""Applies one of this service's own events (suspension, transfer …) to the empty store."""


@dataclass
class RestoreReport:
    events_read: int = 0
    educators: int = 0
    certificates: int = 0
    revocations: int = 0
    recognitions: int = 0
    other_decisions: int = 0
    completions: int = 0
    skipped: int = 0
    last_seq: int = 0
    kids: set[str] = field(default_factory=set)


class LogRestore:
    """Refills an empty store from the log (see the module docstring); `appliers` extend it by event type."""

    def __init__(
        self,
        certification: Certification,
        uow: UnitOfWork,
        source: str,
        *,
        appliers: Mapping[str, OwnEventApplier] | None = None,
        durable: str = "progress",
    ) -> None:
        self._certification = certification
        self._uow = uow
        self._source = source
        self._durable = durable
        self._appliers: dict[str, OwnEventApplier] = {
            CERTIFICATE_ISSUED.type: self._issued,
            CERTIFICATE_REVOKED.type: self._revoked,
            CREDIT_RECOGNIZED.type: self._recognized,
            **(appliers or {}),
        }

    async def restore(self, read: LogReader) -> RestoreReport:
        report = RestoreReport()
        registrations: dict[str, ReceivedEvent] = {}
        own: list[ReceivedEvent] = []
        async for received in read():
            report.events_read += 1
            report.last_seq = max(report.last_seq, received.stream_seq)
            if received.spec is EDUCATOR_REGISTERED:
                registrations.setdefault(cast(EducatorRegistered, received.event.data).educator_id, received)
            elif received.event.source == self._source and received.event.type in self._appliers:
                own.append(received)

        for received in registrations.values():
            data = cast(EducatorRegistered, received.event.data)
            await self._certification.on_educator_registered(received.id, data, source=received.event.source)
            report.educators += 1
        async with self._uow.transaction() as tx:
            for received in own:
                await self._appliers[received.event.type](tx, received)
                self._count(report, received)
        report.kids = await self._kids(own)

        async for received in read():
            if received.spec is not COURSE_COMPLETED:
                continue
            completed = cast(CourseCompleted, received.event.data)
            origin = MessageOrigin(received.subject, received.data, self._durable, received.stream, received.stream_seq)
            try:
                await self._certification.on_course_completed(
                    received.id, completed, origin, source=received.event.source
                )
                report.completions += 1
            except CertificationError as exc:  # refused the first time too (it is in the DLQ already)
                report.skipped += 1
                log.debug("completion skipped in restore", event_id=received.id, reason=exc.code)
        log.info(
            "certification restored from the event log",
            events=report.events_read,
            educators=report.educators,
            certificates=report.certificates,
            revocations=report.revocations,
            recognitions=report.recognitions,
            completions=report.completions,
            last_seq=report.last_seq,
        )
        return report

    @staticmethod
    def _count(report: RestoreReport, received: ReceivedEvent) -> None:
        if received.spec is CERTIFICATE_ISSUED:
            report.certificates += 1
        elif received.spec is CERTIFICATE_REVOKED:
            report.revocations += 1
        elif received.spec is CREDIT_RECOGNIZED:
            report.recognitions += 1
        else:
            report.other_decisions += 1

    async def _kids(self, own: list[ReceivedEvent]) -> set[str]:
        """The kids that signed the restored credentials (the operator must have imported them)."""
        kids = set()
        for received in own:
            if received.spec is CERTIFICATE_ISSUED:
                token = cast(CertificateIssued, received.event.data).credential
                kids.add(_kid_of(token))
        return kids

    # --- this service's own decisions, stored as they were made -------------------------------------------

    async def _issued(self, tx: Repositories, received: ReceivedEvent) -> None:
        data = cast(CertificateIssued, received.event.data)
        if await tx.progress.get_educator(data.educator_id) is None:  # never registered on this log: keep it anyway
            log.warning("certificate without a registration on the log", certificate_id=data.certificate_id)
            await tx.progress.add_educator(
                Educator(data.educator_id, data.institution, "en", "educator", data.issued_at)
            )
        await tx.certificates.add(
            Certificate(
                certificate_id=data.certificate_id,
                educator_id=data.educator_id,
                institution=data.institution,
                programme_id=data.programme_id,
                course_ids=tuple(data.course_ids),
                credits=data.credits,
                issued_at=data.issued_at,
                kid=_kid_of(data.credential),
                credential=data.credential,  # byte-identical: a restore never re-signs
            )
        )

    async def _revoked(self, tx: Repositories, received: ReceivedEvent) -> None:
        data = cast(CertificateRevoked, received.event.data)
        if await tx.certificates.get(data.certificate_id) is not None:
            await tx.certificates.add_revocation(Revocation(data.certificate_id, data.reason, data.revoked_at))

    async def _recognized(self, tx: Repositories, received: ReceivedEvent) -> None:
        data = cast(CreditRecognized, received.event.data)
        if await tx.certificates.get(data.certificate_id) is not None:
            await tx.certificates.add_recognition(
                Recognition(
                    data.recognition_id,
                    data.certificate_id,
                    data.receiving_institution,
                    data.receiving_programme,
                    data.credits,
                    data.recognized_at,
                )
            )


def _kid_of(token: str) -> str:
    """The kid in a credential's JOSE header (the signature was checked when it was issued)."""
    header = token.split(".", 1)[0]
    doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(doc.get("kid", ""))


# --- reading IIOE_EVENTS ------------------------------------------------------------------------------------


def stream_reader(
    js: JetStreamContext, *, name: str = RESTORE_CONSUMER, stream: str = EVENTS_STREAM, batch: int = 500
) -> LogReader:
    """Reads `stream` from its first message up to its last one at the time of the call, through a consumer
    `name` (unacknowledged, in memory) created for the pass and deleted after it — the one consumer the
    service's NATS user may create besides its durable (`iioe.access.RESTORE_CONSUMER`). Unparseable messages
    are skipped (the ordinary consumer dead-letters them)."""

    async def read() -> AsyncIterator[ReceivedEvent]:
        last = (await js.stream_info(stream)).state.last_seq
        if last == 0:
            return
        with contextlib.suppress(NotFoundError):  # a pass interrupted by a crash left it behind
            await js.delete_consumer(stream, name)
        config = ConsumerConfig(
            name=name,
            filter_subject=EVENTS_SUBJECTS,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=120.0,
            mem_storage=True,
        )
        info = await js.add_consumer(stream, config=config)
        if info.delivered is not None and (info.delivered.stream_seq or 0) > 0:
            raise RuntimeError(f"consumer {name} on {stream} already delivered messages: delete it and restart")
        sub = await js.pull_subscribe_bind(stream=stream, name=name, pending_msgs_limit=batch * 4)
        try:
            seq = 0
            while seq < last:
                for msg in await sub.fetch(batch, timeout=10):
                    seq = msg.metadata.sequence.stream
                    if seq > last:
                        break
                    try:
                        spec, event = parse_event(msg.data, msg.subject)
                    except InvalidEvent:
                        continue
                    yield ReceivedEvent(spec, event, msg.subject, seq, 1, msg.data, stream)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await js.delete_consumer(stream, name)

    return read


def missing_kids(report: RestoreReport, jwks: Mapping[str, Any]) -> list[str]:
    """Kids of restored credentials missing from the JWKS: their keys must be imported (`keys import`)."""
    published = {k.get("kid") for k in jwks.get("keys", [])}
    return sorted(k for k in report.kids if k not in published)


__all__ = ["LogRestore", "RestoreReport", "missing_kids", "stream_reader"]
