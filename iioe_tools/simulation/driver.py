"""Plays the partner systems against a running platform, using only what contract v1 offers a partner.

Registrations go through NATS request–reply (the educator_id comes from the reply), course
completions are published to JetStream as CloudEvents with `Nats-Msg-Id` = event id. Both are
retried on timeouts and missing responders: registration is idempotent per e-mail, and
JetStream drops a re-sent event id, so a retry can never double-count.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from pydantic import BaseModel, Field

from iioe.envelope import CloudEvent, event_headers, make_event
from iioe.events import COURSE_COMPLETED, CourseCompleted
from iioe.runtime.logging import get_logger
from iioe.subjects import EVENTS_STREAM, command_subject
from iioe_tools.simulation.scenario import Attempt, GroundTruth, ScaledScenario, Scenario, SimEducator, merge_truths

log = get_logger(__name__)

_TRANSIENT_REQUEST_ERRORS = (nats.errors.TimeoutError, nats.errors.NoRespondersError, asyncio.TimeoutError)
_TRANSIENT_PUBLISH_ERRORS = (
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.NoRespondersError,
    asyncio.TimeoutError,
)
_RETRYABLE_REPLY_CODES = {"internal_error"}


class DriveError(RuntimeError):
    """The platform did not take the scenario (e.g. nobody answers registrations after every retry)."""


class RegistrationFailure(BaseModel):
    educator_key: str
    institution: str
    code: str
    message: str


class DriveResult(BaseModel):
    """What the platform answered; `new_keys` decides which part of the ground truth this run adds."""

    seed: int
    educator_ids: dict[str, str] = Field(description="scenario educator key → platform educator_id")
    new_keys: list[str] = Field(description="educators whose reply was `registered`")
    already_registered: int
    registered_after_retry: int = Field(
        0, description="`already_registered` after a timed-out attempt of this run: counted as new"
    )
    failures: list[RegistrationFailure]
    events_published: int
    events_already_stored: int = Field(
        description="first sends JetStream acknowledged as duplicates (a re-run inside the duplicate window)"
    )
    duplicates_sent: int
    duplicates_dropped: int = Field(description="re-sent events JetStream acknowledged as duplicates")
    registration_seconds: float
    publish_seconds: float


@dataclass(frozen=True)
class DriveOptions:
    concurrency: int = 32
    """Registration requests in flight (the service answers each inside one DB transaction)."""
    publish_concurrency: int = 256
    """JetStream publishes awaiting their ack."""
    request_timeout: float = 10.0
    give_up_after: float = 120.0
    """Total time one request may keep retrying (covers a service that is still starting)."""


def course_completed_event(educator: SimEducator, attempt: Attempt, educator_id: str) -> CloudEvent[CourseCompleted]:
    """The CloudEvent an institution's LMS emits for one attempt; `time` is the completion, so re-runs are identical."""
    return make_event(
        CourseCompleted(
            educator_id=educator_id,
            institution=educator.institution,
            course_id=attempt.course_id,
            score=float(attempt.score),
            completed_at=attempt.completed_at,
            language=educator.language,
        ),
        event_type=COURSE_COMPLETED.type,
        source=f"urn:iioe:partner:{educator.institution}-lms",
        subject=educator_id,
        event_id=attempt.event_id,
        time=attempt.completed_at,
    )


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(5.0, 0.1 * 2**attempt))


async def drive(
    scenario: Scenario,
    nc: NATS,
    options: DriveOptions | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> DriveResult:
    """Register every educator, then publish every attempt (and the duplicate deliveries).

    `progress(phase, n)` is told about each finished step; phase is "register" or "publish".
    """
    opts = options or DriveOptions()
    loop = asyncio.get_running_loop()
    report = progress or (lambda _phase, _n: None)

    started = loop.time()
    ids: dict[str, str] = {}
    new_keys: list[str] = []
    failures: list[RegistrationFailure] = []
    counters = {"already": 0, "after_retry": 0}
    gate = asyncio.Semaphore(opts.concurrency)

    async def register(educator: SimEducator) -> None:
        async with gate:
            status, reply = await _register(nc, educator, opts)
        report("register", 1)
        if status == "failed":
            error = reply.get("error") or {}
            failures.append(
                RegistrationFailure(
                    educator_key=educator.key,
                    institution=educator.institution,
                    code=str(error.get("code", "unknown")),
                    message=str(error.get("message", reply)),
                )
            )
            return
        ids[educator.key] = str(reply["educator_id"])
        if status == "already_registered":
            counters["already"] += 1
        else:
            counters["after_retry"] += status == "registered_after_retry"
            new_keys.append(educator.key)

    await asyncio.gather(*(register(e) for e in scenario.educators))
    registered_in = loop.time() - started

    started = loop.time()
    js = nc.jetstream()
    publish_gate = asyncio.Semaphore(opts.publish_concurrency)
    # ordered by completion time, keyed by event id for the duplicate deliveries
    encoded = {a.event_id: _encoded(e, a, ids[e.key]) for e, a in scenario.events() if e.key in ids}
    events = list(encoded.values())

    async def publish(item: tuple[str, bytes, dict[str, str]]) -> bool:
        async with publish_gate:
            duplicate = await _publish(js, *item, opts)
        report("publish", 1)
        return duplicate

    already = await asyncio.gather(*(publish(enc) for enc in events))
    resend = [encoded[i] for i in scenario.duplicate_event_ids if i in encoded]
    dropped = await asyncio.gather(*(publish(enc) for enc in resend))
    return DriveResult(
        seed=scenario.seed,
        educator_ids=ids,
        new_keys=sorted(new_keys),
        already_registered=counters["already"],
        registered_after_retry=counters["after_retry"],
        failures=sorted(failures, key=lambda f: f.educator_key),
        events_published=len(events),
        events_already_stored=sum(already),
        duplicates_sent=len(resend),
        duplicates_dropped=sum(dropped),
        registration_seconds=round(registered_in, 3),
        publish_seconds=round(loop.time() - started, 3),
    )


def _encoded(educator: SimEducator, attempt: Attempt, educator_id: str) -> tuple[str, bytes, dict[str, str]]:
    event = course_completed_event(educator, attempt, educator_id)
    return COURSE_COMPLETED.subject(educator.institution), event.to_json_bytes(), event_headers(event)


RegisterStatus = Literal["registered", "already_registered", "registered_after_retry", "failed"]


async def _register(nc: NATS, educator: SimEducator, opts: DriveOptions) -> tuple[RegisterStatus, dict[str, Any]]:
    """One register_educator command, retried while nobody answers or the service reports a transient error."""
    subject = command_subject(educator.institution, "register_educator")
    body = json.dumps(educator.registration_body(), ensure_ascii=False).encode()
    deadline = asyncio.get_running_loop().time() + opts.give_up_after
    timed_out = False
    attempt = 0
    while True:
        attempt += 1
        try:
            msg = await nc.request(subject, body, timeout=opts.request_timeout)
            reply: dict[str, Any] = json.loads(msg.data)
        except _TRANSIENT_REQUEST_ERRORS as exc:
            # a timed-out request may still have been applied; no-responders never reached anyone
            timed_out |= not isinstance(exc, nats.errors.NoRespondersError)
            reply = {"error": {"code": type(exc).__name__, "message": f"no reply on {subject}"}}
        else:
            error = reply.get("error")
            if not error:
                if reply.get("status") == "already_registered" and timed_out:
                    return "registered_after_retry", reply
                return reply.get("status", "registered"), reply
            if error.get("code") not in _RETRYABLE_REPLY_CODES:
                return "failed", reply
        if asyncio.get_running_loop().time() > deadline:
            log.warning("registration gave up", subject=subject, educator=educator.key, reply=reply)
            return "failed", reply
        log.debug("registration retry", subject=subject, educator=educator.key, attempt=attempt)
        await _backoff(attempt)


async def _publish(js: Any, subject: str, payload: bytes, headers: dict[str, str], opts: DriveOptions) -> bool:
    """Publish until JetStream acknowledges; returns whether it was dropped as a duplicate."""
    deadline = asyncio.get_running_loop().time() + opts.give_up_after
    attempt = 0
    while True:
        attempt += 1
        try:
            ack = await js.publish(subject, payload, timeout=opts.request_timeout, headers=dict(headers))
            if ack.stream != EVENTS_STREAM:
                raise DriveError(f"{subject} was stored in stream {ack.stream}, expected {EVENTS_STREAM}")
            return bool(ack.duplicate)
        except _TRANSIENT_PUBLISH_ERRORS as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise DriveError(f"JetStream did not acknowledge {subject}: {exc!r}") from exc
            log.debug("publish retry", subject=subject, attempt=attempt)
            await _backoff(attempt)


@dataclass
class ScaledDrive:
    """A scaled run driven shard by shard: the summed result and the ground truth of what it newly registered."""

    result: DriveResult
    new_truth: GroundTruth


async def drive_scaled(
    scaled: ScaledScenario,
    nc: NATS,
    options: DriveOptions | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> ScaledDrive:
    """`drive` one shard after the other; memory holds one shard's people and events at a time.

    Per-educator ids are kept only for an unscaled run (scale 1); the counts, the failures and the
    ground truth of the newly registered educators are summed over the shards."""
    total: DriveResult | None = None
    truths: list[GroundTruth] = []
    for shard in scaled.shards():
        result = await drive(shard, nc, options, progress)
        truths.append(shard.ground_truth(set(result.new_keys)))
        if total is None:
            total = result
            continue
        total = DriveResult(
            seed=scaled.seed,
            educator_ids={},
            new_keys=total.new_keys + result.new_keys,
            already_registered=total.already_registered + result.already_registered,
            registered_after_retry=total.registered_after_retry + result.registered_after_retry,
            failures=total.failures + result.failures,
            events_published=total.events_published + result.events_published,
            events_already_stored=total.events_already_stored + result.events_already_stored,
            duplicates_sent=total.duplicates_sent + result.duplicates_sent,
            duplicates_dropped=total.duplicates_dropped + result.duplicates_dropped,
            registration_seconds=round(total.registration_seconds + result.registration_seconds, 3),
            publish_seconds=round(total.publish_seconds + result.publish_seconds, 3),
        )
        del shard
    assert total is not None
    return ScaledDrive(total, merge_truths(truths))
