"""Rebuilding from the event log on the in-memory unit of work: certificates byte-identical, decisions kept,
progress rebuilt, nothing issued again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from iioe.envelope import make_event
from iioe.events import BY_MODEL, CertificateIssued, CourseCompleted, EducatorRegistered
from iioe.runtime.consumer import ReceivedEvent
from services.certification import keys
from services.certification.reference import builtin_catalogue
from services.certification.restore import LogRestore, missing_kids
from services.certification.settings import SOURCE
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.transfer_service import CreditTransfers, DecideTransfer, RequestTransfer, restore_appliers
from services.certification.usecases import Certification, MessageOrigin, RecognizeCredits, RevokeCertificate

AI = "ai-in-higher-education"
CATALOGUE = builtin_catalogue()
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
PARTNER = "urn:iioe:partner:lms"


class Log:
    """IIOE_EVENTS as the service would find it: partner events and the service's own, in order."""

    def __init__(self) -> None:
        self.events: list[ReceivedEvent] = []

    def append(self, data: BaseModel, event_id: str, source: str) -> ReceivedEvent:
        spec = BY_MODEL[type(data)]
        event = make_event(data, event_type=spec.type, source=source, event_id=event_id, time=T0)
        subject = spec.subject(data.institution)  # type: ignore[attr-defined]
        received = ReceivedEvent(spec, event, subject, len(self.events) + 1, 1, event.to_json_bytes(), "IIOE_EVENTS")
        self.events.append(received)
        return received

    def publish_outbox(self, uow: FakeUnitOfWork, published: set[str]) -> None:
        for staged in uow.state.events:
            if staged.event_id not in published:
                published.add(staged.event_id)
                self.append(staged.data, staged.event_id, SOURCE)

    async def read(self) -> AsyncIterator[ReceivedEvent]:
        for received in list(self.events):
            yield received


async def deliver(service: Certification, received: ReceivedEvent) -> None:
    data: Any = received.event.data
    if isinstance(data, EducatorRegistered):
        await service.on_educator_registered(received.id, data, source=received.event.source)
    else:
        origin = MessageOrigin(received.subject, received.data, "progress", "IIOE_EVENTS", received.stream_seq)
        await service.on_course_completed(received.id, data, origin, source=received.event.source)


def completion(educator: str, course: str, score: float, at: datetime) -> CourseCompleted:
    return CourseCompleted(educator_id=educator, institution="must", course_id=course, score=score, completed_at=at)


async def original_life() -> tuple[Log, FakeUnitOfWork, Certification]:
    log, published = Log(), set[str]()
    uow = FakeUnitOfWork()
    service = Certification(uow, CATALOGUE, {"must": {}, "num": {}})
    inputs: list[BaseModel] = []
    for educator in ("edu-1", "edu-2", "edu-3"):
        inputs.append(
            EducatorRegistered(
                educator_id=educator, institution="must", language="mn", role="educator", registered_at=T0
            )
        )
    for n, course in enumerate(CATALOGUE.programme(AI).course_ids):
        for educator, score in (("edu-1", 90), ("edu-2", 85), ("edu-3", 70)):
            at = T0 + timedelta(minutes=n)
            inputs.append(completion(educator, course, score, at))
    inputs.append(completion("edu-x", "genai-fundamentals", 99, T0))  # an educator who never registers
    for i, data in enumerate(inputs):
        await deliver(service, log.append(data, f"in-{i}", PARTNER))
        log.publish_outbox(uow, published)
    cert = [e for e in uow.events_of(CertificateIssued) if isinstance(e, CertificateIssued)]
    await service.revoke(RevokeCertificate(cert[1].certificate_id, "fraud"))
    await service.recognize(RecognizeCredits(cert[0].certificate_id, "num", "msc-education", 2))
    transfers = CreditTransfers(uow, {"must": {}, "num": {}, "msue": {}})
    accepted, _ = await transfers.request(RequestTransfer("edu-1", cert[0].certificate_id, "msue", "msc-ai"))
    await transfers.decide(DecideTransfer(accepted.request_id, "accepted", credits=1))
    await transfers.request(RequestTransfer("edu-1", cert[0].certificate_id, "num", "phd"))
    await keys.rotate_key(FakeKeys(uow))  # a later rotation: the old kid must stay published
    log.publish_outbox(uow, published)
    return log, uow, service


class FakeKeys:
    """The signing keys of a fake unit of work, outside a use case (as the CLI reaches them)."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def __getattr__(self, name: str) -> Any:
        async def call(*args: Any) -> Any:
            async with self._uow.transaction() as tx:
                return await getattr(tx.keys, name)(*args)

        return call


async def test_an_empty_store_is_rebuilt_from_the_log_without_issuing_again() -> None:
    log, before, _ = await original_life()
    after = FakeUnitOfWork()
    after.state.keys = list(before.state.keys)  # `keys import`
    service = Certification(after, CATALOGUE, {"must": {}, "num": {}})

    report = await LogRestore(service, after, SOURCE, appliers=restore_appliers()).restore(log.read)

    assert after.state.transfers == before.state.transfers and len(after.state.transfers) == 2
    assert after.state.certificates == before.state.certificates  # credentials byte-identical, revocation kept
    assert after.state.recognitions == before.state.recognitions
    assert after.state.completions == before.state.completions and after.state.educators == before.state.educators
    assert set(after.state.pending) == set(before.state.pending)  # edu-x still waits for a registration
    assert after.events_of(CertificateIssued) == []  # nothing issued again
    assert (report.certificates, report.revocations, report.recognitions) == (2, 1, 2)
    assert missing_kids(report, await service.jwks()) == []
    revoked = next(c for c in after.state.certificates.values() if c.revocation)
    assert (await service.verify(revoked.credential)).status == "revoked"

    # the ordinary consumer then re-delivers the whole log: every event is a duplicate
    commits = after.state.inbox.copy()
    for received in log.events:
        if isinstance(received.event.data, EducatorRegistered | CourseCompleted):
            await deliver(service, received)
    assert after.state.inbox == commits and after.events_of(CertificateIssued) == []


async def test_a_restore_without_the_keys_names_the_missing_kids() -> None:
    log, before, _ = await original_life()
    after = FakeUnitOfWork()
    service = Certification(after, CATALOGUE, {"must": {}, "num": {}})
    report = await LogRestore(service, after, SOURCE).restore(log.read)
    signing = {c.kid for c in before.state.certificates.values()}
    assert missing_kids(report, await service.jwks()) == sorted(signing)


async def test_events_of_another_source_are_not_taken_for_our_decisions() -> None:
    log, _, _ = await original_life()
    forged = next(r for r in log.events if isinstance(r.event.data, CertificateIssued))
    fake_log = Log()
    for received in log.events:
        if received.event.source == PARTNER:
            fake_log.events.append(received)
    fake_log.append(forged.event.data, "forged", PARTNER)  # a partner cannot publish our decisions
    after = FakeUnitOfWork()
    service = Certification(after, CATALOGUE, {"must": {}, "num": {}})
    report = await LogRestore(service, after, SOURCE).restore(fake_log.read)
    assert report.certificates == 0
    # progress rebuilt from completions: the certificates are earned and issued anew (nothing was on the log)
    assert len(after.events_of(CertificateIssued)) == 2
