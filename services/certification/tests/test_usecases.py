"""Certification use cases on the in-memory unit of work: every rule, no NATS, no PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import pytest

from iioe.events import CertificateIssued, CertificateRevoked, CourseCompleted, CreditRecognized, EducatorRegistered
from services.certification.domain import CertificationError, certificate_id_for
from services.certification.reference import builtin_catalogue
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import Certification, MessageOrigin, RecognizeCredits, RevokeCertificate

AI = "ai-in-higher-education"
AI_COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")
DTE, ADP, ATD = "digital-teaching-essentials", "applied-digital-pedagogy", "advanced-teaching-design"
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
CATALOGUE = builtin_catalogue()
_ids = itertools.count()


class World:
    """One service on a fresh fake unit of work, with the events a partner would send."""

    def __init__(self) -> None:
        self.uow = FakeUnitOfWork()
        self.service = Certification(self.uow, CATALOGUE, {"must": {}, "num": {}})

    async def register(self, educator: str, institution: str = "must", event_id: str | None = None) -> str:
        event_id = event_id or f"reg-{next(_ids)}"
        data = EducatorRegistered(
            educator_id=educator, institution=institution, language="en", role="educator", registered_at=T0
        )
        await self.service.on_educator_registered(event_id, data)
        return event_id

    async def complete(
        self, educator: str, course: str, score: float, *, institution: str = "must", event_id: str | None = None
    ) -> str:
        event_id = event_id or f"done-{next(_ids)}"
        data = CourseCompleted(
            educator_id=educator,
            institution=institution,
            course_id=course,
            score=float(score),
            completed_at=T0 + timedelta(minutes=next(_ids)),
        )
        origin = MessageOrigin(f"iioe.events.{institution}.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
        await self.service.on_course_completed(event_id, data, origin)
        return event_id

    async def pass_all(self, educator: str, programme: str, score: float = 90) -> None:
        for course in CATALOGUE.programme(programme).course_ids:
            await self.complete(educator, course, score)

    def issued(self, educator: str | None = None) -> list[CertificateIssued]:
        events = [e for e in self.uow.events_of(CertificateIssued) if isinstance(e, CertificateIssued)]
        return [e for e in events if educator is None or e.educator_id == educator]

    def programmes_certified(self, educator: str) -> list[str]:
        return [c.programme_id for c in self.uow.state.certificates.values() if c.educator_id == educator]


@pytest.fixture
def world() -> World:
    return World()


# --- issuance --------------------------------------------------------------------------------------------


async def test_three_ai_courses_at_80_or_more_issue_one_verifiable_certificate(world: World) -> None:
    await world.register("edu-1")
    for course, score in zip(AI_COURSES, (80, 92.5, 100), strict=True):
        await world.complete("edu-1", course, score)

    [issued] = world.issued("edu-1")
    assert issued.certificate_id == certificate_id_for("edu-1", AI)
    assert (issued.programme_id, issued.institution, issued.credits) == (AI, "must", 3)
    assert issued.course_ids == list(AI_COURSES)
    verdict = await world.service.verify(issued.credential)
    assert verdict.status == "valid" and verdict.certificate is not None
    assert verdict.certificate.certificate_id == issued.certificate_id


async def test_a_score_below_80_issues_nothing(world: World) -> None:
    await world.register("edu-1")
    for course, score in zip(AI_COURSES, (95, 79.9, 88), strict=True):
        await world.complete("edu-1", course, score)

    assert world.issued() == [] and world.programmes_certified("edu-1") == []
    progress = await world.service.progress("edu-1")
    ai = next(p for p in progress.programmes if p.programme_id == AI)
    assert ai.below_threshold == ("teaching-with-ai",) and not ai.earned


# --- retakes: the best attempt counts -----------------------------------------------------------------------


async def test_a_better_retake_earns_the_certificate(world: World) -> None:
    await world.register("edu-1")
    await world.complete("edu-1", "genai-fundamentals", 90)
    await world.complete("edu-1", "future-classroom", 90)
    await world.complete("edu-1", "teaching-with-ai", 70)
    assert world.issued() == []

    await world.complete("edu-1", "teaching-with-ai", 85)

    assert [e.programme_id for e in world.issued("edu-1")] == [AI]


async def test_a_worse_retake_keeps_the_best_score_and_never_undoes_a_certificate(world: World) -> None:
    await world.register("edu-1")
    await world.complete("edu-1", "teaching-with-ai", 91)
    await world.complete("edu-1", "teaching-with-ai", 12)
    completion = world.uow.state.completions["edu-1"]["teaching-with-ai"]
    assert (completion.best_score, completion.attempts) == (91, 2)

    await world.complete("edu-1", "genai-fundamentals", 88)
    await world.complete("edu-1", "future-classroom", 80)
    assert len(world.issued("edu-1")) == 1
    for course in AI_COURSES:
        await world.complete("edu-1", course, 5)

    assert len(world.issued("edu-1")) == 1
    certificate = world.uow.state.certificates[certificate_id_for("edu-1", AI)]
    assert certificate.status == "active"
    progress = await world.service.progress("edu-1")
    ai = next(p for p in progress.programmes if p.programme_id == AI)
    assert [(c.course_id, c.best_score) for c in ai.courses] == list(zip(AI_COURSES, (88, 91, 80), strict=True))


async def test_the_best_attempt_keeps_the_date_it_was_reached(world: World) -> None:
    await world.register("edu-1")
    await world.complete("edu-1", "teaching-with-ai", 70)
    first = world.uow.state.completions["edu-1"]["teaching-with-ai"]
    await world.complete("edu-1", "teaching-with-ai", 85)
    best = world.uow.state.completions["edu-1"]["teaching-with-ai"]
    await world.complete("edu-1", "teaching-with-ai", 85)
    same = world.uow.state.completions["edu-1"]["teaching-with-ai"]

    assert best.best_completed_at > first.best_completed_at
    assert same.best_completed_at == best.best_completed_at and same.attempts == 3
    assert same.first_completed_at == first.first_completed_at


# --- completions before registration -------------------------------------------------------------------------


async def test_completions_before_registration_wait_and_then_count(world: World) -> None:
    for course in AI_COURSES:
        await world.complete("edu-early", course, 90)
    assert world.issued() == [] and len(world.uow.state.pending) == 3
    with pytest.raises(CertificationError) as not_yet:
        await world.service.progress("edu-early")
    assert not_yet.value.code == "educator_not_found"

    await world.register("edu-early")

    assert [e.programme_id for e in world.issued("edu-early")] == [AI]
    assert world.uow.state.pending == {}
    assert (await world.service.progress("edu-early")).pending_completions == 0


async def test_a_parked_completion_naming_another_institution_is_dead_lettered_not_applied(world: World) -> None:
    await world.complete("edu-x", "genai-fundamentals", 90, institution="num")
    await world.complete("edu-x", "teaching-with-ai", 90, institution="must")

    await world.register("edu-x", institution="must")

    [dead] = world.uow.state.dead_letters
    assert (dead.reason, dead.pending.institution, dead.pending.course_id) == (
        "institution_mismatch",
        "num",
        "genai-fundamentals",
    )
    assert set(world.uow.state.completions["edu-x"]) == {"teaching-with-ai"}


async def test_a_completion_for_another_institution_is_refused_and_leaves_nothing(world: World) -> None:
    await world.register("edu-1", institution="must")
    with pytest.raises(CertificationError) as refused:
        await world.complete("edu-1", "genai-fundamentals", 90, institution="num", event_id="wrong-inst")
    assert refused.value.code == "institution_mismatch"
    assert ("", "wrong-inst") not in world.uow.state.inbox  # rolled back with the effect: a redelivery is judged again
    assert world.uow.state.completions.get("edu-1", {}) == {}


async def test_an_unknown_course_is_refused(world: World) -> None:
    await world.register("edu-1")
    with pytest.raises(CertificationError) as refused:
        await world.complete("edu-1", "underwater-basket-weaving", 100)
    assert refused.value.code == "unknown_course"


async def test_an_email_as_educator_id_never_reaches_a_credential_and_nothing_is_committed(world: World) -> None:
    educator = "someone@example.org"
    await world.register(educator)
    await world.complete(educator, "genai-fundamentals", 90)
    await world.complete(educator, "teaching-with-ai", 90)
    with pytest.raises(CertificationError) as refused:
        await world.complete(educator, "future-classroom", 90, event_id="last-one")
    assert refused.value.code == "invalid_data"
    assert world.issued() == [] and ("", "last-one") not in world.uow.state.inbox
    assert "future-classroom" not in world.uow.state.completions[educator]


# --- prerequisites -------------------------------------------------------------------------------------------


async def test_an_intermediate_programme_waits_for_its_foundational_certificate(world: World) -> None:
    await world.register("edu-1")
    await world.pass_all("edu-1", ATD)
    await world.pass_all("edu-1", ADP)
    assert world.issued() == []
    progress = await world.service.progress("edu-1")
    adp = next(p for p in progress.programmes if p.programme_id == ADP)
    assert adp.missing_courses == () and adp.missing_prerequisites == (DTE,)

    await world.pass_all("edu-1", DTE)

    assert [e.programme_id for e in world.issued("edu-1")] == [DTE, ADP, ATD]


async def test_a_revoked_prerequisite_unlocks_nothing(world: World) -> None:
    await world.register("edu-1")
    await world.pass_all("edu-1", DTE)
    await world.service.revoke(RevokeCertificate(certificate_id_for("edu-1", DTE), "issued in error"))
    await world.pass_all("edu-1", ADP)
    assert world.programmes_certified("edu-1") == [DTE]


# --- exactly one certificate ----------------------------------------------------------------------------------


async def test_duplicates_and_replays_issue_exactly_one_certificate(world: World) -> None:
    registration = await world.register("edu-1")
    completions = [await world.complete("edu-1", course, 90) for course in AI_COURSES]
    await world.register("edu-1", event_id=registration)  # a replay: the same events again
    for course, event_id in zip(AI_COURSES, completions, strict=True):
        await world.complete("edu-1", course, 90, event_id=event_id)
    for course in AI_COURSES:  # the same results re-sent as new events
        await world.complete("edu-1", course, 95)

    assert len(world.issued("edu-1")) == 1 and world.programmes_certified("edu-1") == [AI]
    assert world.uow.state.completions["edu-1"]["genai-fundamentals"].attempts == 2  # the replay counted nothing


async def test_concurrent_deliveries_issue_exactly_one_certificate(world: World) -> None:
    await world.register("edu-1")
    await world.complete("edu-1", "genai-fundamentals", 90)
    await world.complete("edu-1", "teaching-with-ai", 90)
    await asyncio.gather(*(world.complete("edu-1", "future-classroom", 90 + i) for i in range(5)))
    assert len(world.issued("edu-1")) == 1


# --- revocation ----------------------------------------------------------------------------------------------


async def test_revoking_twice_revokes_once_and_the_programme_is_never_reissued(world: World) -> None:
    await world.register("edu-1")
    await world.pass_all("edu-1", AI)
    [issued] = world.issued("edu-1")

    first, created = await world.service.revoke(RevokeCertificate(issued.certificate_id, "academic misconduct"))
    again, created_again = await world.service.revoke(RevokeCertificate(issued.certificate_id, "another reason"))

    assert created and not created_again and again == first and again.reason == "academic misconduct"
    assert len(world.uow.events_of(CertificateRevoked)) == 1
    assert (await world.service.verify(issued.credential)).status == "revoked"
    await world.pass_all("edu-1", AI, score=100)
    assert len(world.issued("edu-1")) == 1


async def test_revoking_an_unknown_certificate_is_not_found(world: World) -> None:
    with pytest.raises(CertificationError) as missing:
        await world.service.revoke(RevokeCertificate("cert-nope", "x"))
    assert missing.value.code == "certificate_not_found"


# --- recognition limits --------------------------------------------------------------------------------------


async def certified(world: World) -> str:
    await world.register("edu-1")
    await world.pass_all("edu-1", AI)
    return certificate_id_for("edu-1", AI)


async def test_recognition_defaults_to_all_credits_and_never_exceeds_them(world: World) -> None:
    cert = await certified(world)
    recognition, created = await world.service.recognize(RecognizeCredits(cert, "num", "MEd Educational Technology"))
    assert created and recognition.credits == 3

    with pytest.raises(CertificationError) as too_many:
        await world.service.recognize(RecognizeCredits(cert, "must", "MEd Other", credits=3.5))
    assert too_many.value.code == "credits_exceed_certificate"
    partial, _ = await world.service.recognize(RecognizeCredits(cert, "must", "MEd Other", credits=2))
    assert partial.credits == 2
    assert len(world.uow.events_of(CreditRecognized)) == 2


async def test_the_same_recognition_again_is_the_same_one_and_other_credits_conflict(world: World) -> None:
    cert = await certified(world)
    first, _ = await world.service.recognize(RecognizeCredits(cert, "num", "MEd", credits=2))
    again, created = await world.service.recognize(RecognizeCredits(cert, "num", "MEd", credits=2))
    assert again == first and not created
    with pytest.raises(CertificationError) as conflict:
        await world.service.recognize(RecognizeCredits(cert, "num", "MEd", credits=1))
    assert conflict.value.code == "recognition_conflict"
    assert len(world.uow.events_of(CreditRecognized)) == 1


async def test_a_revoked_certificate_or_an_unknown_institution_recognises_nothing(world: World) -> None:
    cert = await certified(world)
    with pytest.raises(CertificationError) as unknown:
        await world.service.recognize(RecognizeCredits(cert, "atlantis", "MEd"))
    assert unknown.value.code == "unknown_institution"
    await world.service.revoke(RevokeCertificate(cert, "issued in error"))
    with pytest.raises(CertificationError) as revoked:
        await world.service.recognize(RecognizeCredits(cert, "num", "MEd"))
    assert revoked.value.code == "certificate_revoked"
    assert world.uow.events_of(CreditRecognized) == []


# --- keys and verification -----------------------------------------------------------------------------------


async def test_rotation_keeps_old_credentials_verifying(world: World) -> None:
    await world.register("edu-1")
    await world.pass_all("edu-1", AI)
    old_kid = (await world.service.keyring()).active_kid
    ring = await world.service.rotate_key()
    assert ring.active_kid != old_kid and old_kid in ring.kids
    [issued] = world.issued("edu-1")
    assert (await world.service.verify(issued.credential)).status == "valid"


async def test_a_tampered_credential_is_invalid(world: World) -> None:
    await world.register("edu-1")
    await world.pass_all("edu-1", AI)
    [issued] = world.issued("edu-1")
    header, payload, signature = issued.credential.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"
    verdict = await world.service.verify(tampered)
    assert verdict.status == "invalid" and verdict.reason == "bad_signature"


async def test_the_same_event_id_from_two_sources_is_two_events(world: World) -> None:
    """CloudEvents ids are unique per source: the inbox keys on (source, id)."""
    await world.register("edu-1")
    origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
    data = CourseCompleted(
        educator_id="edu-1", institution="must", course_id="genai-fundamentals", score=50, completed_at=T0
    )
    for source in ("urn:iioe:partner:a", "urn:iioe:partner:b", "urn:iioe:partner:a"):
        await world.service.on_course_completed("evt-1", data, origin, source=source)
    progress = await world.service.progress("edu-1")
    assert progress.completions["genai-fundamentals"].attempts == 2


# --- completions parked for an unknown educator are bounded -------------------------------------------------


async def test_a_completion_parked_past_the_limit_is_dead_lettered_as_educator_unknown() -> None:
    uow = FakeUnitOfWork()
    now = [datetime.now(UTC)]
    service = Certification(uow, CATALOGUE, {"must": {}}, clock=lambda: now[0])
    raw = b'{"id":"c1","source":"urn:lms"}'
    origin = MessageOrigin("iioe.events.must.course_completed.v1", raw, "progress", "IIOE_EVENTS", 7)
    data = CourseCompleted(educator_id="ghost", institution="must", course_id="genai-fundamentals", score=90,
                           completed_at=T0)  # fmt: skip
    await service.on_course_completed("c1", data, origin, source="urn:lms")

    assert await service.expire_pending(timedelta(days=7)) == 0  # not yet
    now[0] += timedelta(days=7, seconds=1)
    assert await service.expire_pending(timedelta(days=7)) == 1
    [letter] = uow.state.dead_letters
    assert letter.reason == "educator_unknown" and letter.pending.raw == raw
    assert uow.state.pending == {} and await service.expire_pending(timedelta(days=7)) == 0

    # a registration arriving afterwards finds nothing parked: the completion waits in the DLQ for a re-drive
    await service.on_educator_registered(
        "r1",
        EducatorRegistered(educator_id="ghost", institution="must", language="en", role="educator", registered_at=T0),
    )
    assert (await service.progress("ghost")).completions == {}
    await service.on_course_completed("c1", data, origin, source="urn:lms")  # the re-driven letter counts
    assert (await service.progress("ghost")).completions["genai-fundamentals"].best_score == 90
