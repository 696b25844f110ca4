"""Plays the programme activity against a running platform, after the registrations and completions.

Promotions go through the `change_role` command (request–reply, idempotent: a re-run is answered
`unchanged`); everything else is a partner CloudEvent built with the `iioe.events` models and
published to JetStream with `Nats-Msg-Id` = event id, in waves that keep cause before effect:
sessions, then attendances / portfolio entries / first practice reports / ratings, then the later
practice reports (the latest report counts), then the duplicate deliveries.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from datetime import datetime, time
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from pydantic import BaseModel, Field

from iioe.commands import CHANGE_ROLE
from iioe.envelope import CloudEvent, event_headers, make_event
from iioe.events import (
    BY_MODEL,
    CourseEvaluated,
    PortfolioEntryAdded,
    PracticeIntegrationReported,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe.runtime.logging import get_logger
from iioe.subjects import EVENTS_STREAM, command_subject
from iioe_tools.simulation.programme_activity import (
    Attendance,
    CourseRating,
    PortfolioItem,
    PracticeReport,
    ProgrammeActivity,
    TrainingSession,
)
from iioe_tools.simulation.scenario import ULAANBAATAR

log = get_logger(__name__)

_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    asyncio.TimeoutError,
)
Encoded = tuple[str, bytes, dict[str, str]]


class ProgrammeDriveError(RuntimeError):
    """JetStream never acknowledged a programme event."""


class RoleChangeFailure(BaseModel):
    educator_key: str
    institution: str
    code: str
    message: str


class ProgrammeDriveResult(BaseModel):
    promotions_changed: int
    promotions_unchanged: int = Field(description="already master teacher: a re-run of this seed")
    promotion_failures: list[RoleChangeFailure]
    events_published: int
    events_already_stored: int
    duplicates_sent: int
    duplicates_dropped: int
    skipped_unregistered: int = Field(description="events about an educator whose registration failed")
    seconds: float


def _at(day: Any, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ULAANBAATAR)


def _partner(institution: str, system: str) -> str:
    return f"urn:iioe:partner:{institution}-{system}"


def session_event(s: TrainingSession, ids: Mapping[str, str]) -> CloudEvent[TrainingSessionHeld]:
    data = TrainingSessionHeld(
        session_id=s.session_id,
        institution=s.institution,
        master_teacher_id=ids[s.master_teacher],
        region=s.region,
        mode=s.mode,
        held_on=s.held_on,
        language=s.language,
    )
    return _event(data, s.event_id, _partner(s.institution, "cascade"), ids[s.master_teacher], _at(s.held_on))


def attendance_event(a: Attendance, ids: Mapping[str, str]) -> CloudEvent[TraineeAttended]:
    """On the trainee's institution subject, from that institution's partner system."""
    data = TraineeAttended(session_id=a.session_id, institution=a.institution, educator_id=ids[a.trainee])
    return _event(data, a.event_id, _partner(a.institution, "cascade"), ids[a.trainee], _at(a.held_on, 17))


def portfolio_event(p: PortfolioItem, ids: Mapping[str, str]) -> CloudEvent[PortfolioEntryAdded]:
    data = PortfolioEntryAdded(
        entry_id=p.entry_id,
        educator_id=ids[p.educator],
        institution=p.institution,
        kind=p.kind,
        title=p.title,
        link=p.link,
        added_on=p.added_on,
    )
    return _event(data, p.event_id, _partner(p.institution, "portfolio"), ids[p.educator], _at(p.added_on))


def practice_event(r: PracticeReport, ids: Mapping[str, str]) -> CloudEvent[PracticeIntegrationReported]:
    data = PracticeIntegrationReported(
        educator_id=ids[r.educator],
        institution=r.institution,
        integrates_ai=r.integrates_ai,
        disciplines=list(r.disciplines) if r.disciplines else None,
        reported_on=r.reported_on,
    )
    return _event(data, r.event_id, _partner(r.institution, "portfolio"), ids[r.educator], _at(r.reported_on))


def rating_event(r: CourseRating, ids: Mapping[str, str]) -> CloudEvent[CourseEvaluated]:
    data = CourseEvaluated(
        educator_id=ids[r.educator],
        institution=r.institution,
        course_id=r.course_id,
        language=r.language,
        content_rating=r.content_rating,
        usefulness_rating=r.usefulness_rating,
    )
    return _event(data, r.event_id, _partner(r.institution, "lms"), ids[r.educator], r.evaluated_at)


def _event(data: Any, event_id: str, source: str, subject: str, at: datetime) -> CloudEvent[Any]:
    return make_event(
        data, event_type=BY_MODEL[type(data)].type, source=source, subject=subject, event_id=event_id, time=at
    )


def event_waves(activity: ProgrammeActivity, ids: Mapping[str, str]) -> tuple[list[list[CloudEvent[Any]]], int]:
    """The events in publishing order (each wave acknowledged before the next), and how many were
    skipped because an educator they name has no platform id (a failed registration)."""
    skipped = 0

    def build(items: Any, make: Callable[[Any, Mapping[str, str]], CloudEvent[Any]]) -> list[CloudEvent[Any]]:
        nonlocal skipped
        out = []
        for item in items:
            try:
                out.append(make(item, ids))
            except KeyError:
                skipped += 1
        return out

    sessions = build(activity.sessions, session_event)
    known_sessions = {e.data.session_id for e in sessions}
    attendances = build((a for a in activity.attendances if a.session_id in known_sessions), attendance_event)
    skipped += sum(1 for a in activity.attendances if a.session_id not in known_sessions)
    portfolio = build(activity.portfolio, portfolio_event)
    firsts = build((r for r in activity.practice if r.order == 0), practice_event)
    laters = build((r for r in activity.practice if r.order > 0), practice_event)
    ratings = build(activity.ratings, rating_event)
    return [sessions, attendances + portfolio + firsts + ratings, laters], skipped


def encode(event: CloudEvent[Any]) -> Encoded:
    spec = BY_MODEL[type(event.data)]
    return spec.subject(event.data.institution), event.to_json_bytes(), event_headers(event)


async def drive_programme(
    activity: ProgrammeActivity,
    nc: NATS,
    ids: Mapping[str, str],
    *,
    concurrency: int = 16,
    publish_concurrency: int = 256,
    request_timeout: float = 10.0,
    give_up_after: float = 120.0,
    progress: Callable[[str, int], Any] | None = None,
) -> ProgrammeDriveResult:
    """Promote, then publish every programme event and the duplicate deliveries."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    report = progress or (lambda _phase, _n: None)
    failures: list[RoleChangeFailure] = []
    statuses: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def promote(key: str) -> None:
        institution = activity.profiles[key].institution
        if key not in ids:
            return
        async with gate:
            reply = await _request(nc, institution, ids[key], request_timeout, give_up_after)
        report("promote", 1)
        error = reply.get("error")
        if error or reply.get("role") != "master_teacher":
            error = error or {}
            failures.append(
                RoleChangeFailure(
                    educator_key=key,
                    institution=institution,
                    code=str(error.get("code", "unexpected_reply")),
                    message=str(error.get("message", reply)),
                )
            )
        else:
            statuses.append(str(reply.get("status")))

    await asyncio.gather(*(promote(k) for k in activity.promotions))

    js = nc.jetstream()
    publish_gate = asyncio.Semaphore(publish_concurrency)

    async def publish(item: Encoded) -> bool:
        async with publish_gate:
            duplicate = await _publish(js, *item, request_timeout, give_up_after)
        report("programme", 1)
        return duplicate

    waves, skipped = event_waves(activity, ids)
    encoded: dict[str, Encoded] = {}
    already = 0
    for wave in waves:
        batch = {e.id: encode(e) for e in wave}
        encoded |= batch
        already += sum(await asyncio.gather(*(publish(item) for item in batch.values())))
    resend = [encoded[i] for i in activity.duplicate_event_ids if i in encoded]
    dropped = sum(await asyncio.gather(*(publish(item) for item in resend)))
    return ProgrammeDriveResult(
        promotions_changed=statuses.count("changed"),
        promotions_unchanged=statuses.count("unchanged"),
        promotion_failures=sorted(failures, key=lambda f: f.educator_key),
        events_published=len(encoded),
        events_already_stored=already,
        duplicates_sent=len(resend),
        duplicates_dropped=dropped,
        skipped_unregistered=skipped,
        seconds=round(loop.time() - started, 3),
    )


async def _request(nc: NATS, institution: str, educator_id: str, timeout: float, give_up_after: float) -> Any:
    """One change_role command, retried while nobody answers or the service reports a transient error."""
    subject = command_subject(institution, CHANGE_ROLE)
    body = json.dumps({"educator_id": educator_id, "role": "master_teacher"}).encode()
    deadline = asyncio.get_running_loop().time() + give_up_after
    attempt = 0
    while True:
        attempt += 1
        try:
            reply: Any = json.loads((await nc.request(subject, body, timeout=timeout)).data)
        except _TRANSIENT as exc:
            reply = {"error": {"code": type(exc).__name__, "message": f"no reply on {subject}"}}
        else:
            if (reply.get("error") or {}).get("code") != "internal_error":
                return reply
        if asyncio.get_running_loop().time() > deadline:
            return reply
        await asyncio.sleep(min(5.0, 0.1 * 2**attempt))


async def _publish(
    js: Any, subject: str, payload: bytes, headers: dict[str, str], timeout: float, give_up: float
) -> bool:
    """Publish until JetStream acknowledges (the same Nats-Msg-Id every time); True if it was a duplicate."""
    deadline = asyncio.get_running_loop().time() + give_up
    attempt = 0
    while True:
        attempt += 1
        try:
            ack = await js.publish(subject, payload, timeout=timeout, headers=dict(headers))
        except _TRANSIENT as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise ProgrammeDriveError(f"JetStream did not acknowledge {subject}: {exc!r}") from exc
            log.debug("publish retry", subject=subject, attempt=attempt)
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt))
            continue
        if ack.stream != EVENTS_STREAM:
            raise ProgrammeDriveError(f"{subject} was stored in stream {ack.stream}, expected {EVENTS_STREAM}")
        return bool(ack.duplicate)
