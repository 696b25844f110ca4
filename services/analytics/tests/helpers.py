"""Test helpers: CloudEvents as partners and services publish them, and a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from pydantic import BaseModel

from iioe.envelope import CloudEvent, event_headers, make_event
from iioe.events import (
    BY_MODEL,
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CourseCompleted,
    CourseEvaluated,
    CreditRecognized,
    CreditTransferDecided,
    CreditTransferRequested,
    EducatorRegistered,
    EducatorRoleChanged,
    PracticeIntegrationReported,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe_tools.embedded import free_port
from services.analytics.settings import AI_PROGRAMME_COURSES, AI_PROGRAMME_ID, AnalyticsSettings

AI_COURSES = AI_PROGRAMME_COURSES


def settings_for(infra: Any, database_url: str, ref: str, **kw: Any) -> AnalyticsSettings:
    return AnalyticsSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        ack_wait_seconds=5.0,
        retry_backoff_seconds=(0.2, 0.5),
        snapshot_interval_seconds=0.3,
        **kw,
    )


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _event(data: BaseModel, event_id: str | None = None, time: str | None = None) -> CloudEvent[Any]:
    spec = BY_MODEL[type(data)]
    return make_event(
        data,
        event_type=spec.type,
        source="urn:iioe:test",
        subject=getattr(data, "educator_id", None),
        event_id=event_id,
        time=ts(time) if time else None,
    )


def registered(
    educator_id: str,
    institution: str,
    at: str = "2025-03-10T10:00:00+08:00",
    role: str = "educator",
    language: str = "mn",
    **kw: Any,
) -> CloudEvent[Any]:
    data = EducatorRegistered(
        educator_id=educator_id, institution=institution, language=language, role=role, registered_at=ts(at)
    )
    return _event(data, **kw)


def completed(
    educator_id: str,
    institution: str,
    course_id: str,
    at: str = "2025-04-01T10:00:00+08:00",
    score: float = 85.0,
    language: str | None = None,
    **kw: Any,
) -> CloudEvent[Any]:
    data = CourseCompleted(
        educator_id=educator_id,
        institution=institution,
        course_id=course_id,
        score=score,
        completed_at=ts(at),
        language=language,
    )
    return _event(data, **kw)


def issued(
    certificate_id: str,
    educator_id: str,
    institution: str,
    at: str = "2025-05-01T10:00:00+08:00",
    programme_id: str = AI_PROGRAMME_ID,
    **kw: Any,
) -> CloudEvent[Any]:
    data = CertificateIssued(
        certificate_id=certificate_id,
        educator_id=educator_id,
        institution=institution,
        programme_id=programme_id,
        course_ids=list(AI_COURSES),
        credits=6,
        issued_at=ts(at),
        credential="eyJhbGciOiJFZERTQSJ9.e30.c2ln",
    )
    return _event(data, **kw)


def revoked(
    certificate_id: str, educator_id: str, institution: str, at: str = "2025-06-01T10:00:00+08:00", **kw: Any
) -> CloudEvent[Any]:
    data = CertificateRevoked(
        certificate_id=certificate_id,
        educator_id=educator_id,
        institution=institution,
        reason="test",
        revoked_at=ts(at),
    )
    return _event(data, **kw)


def recognized(recognition_id: str, certificate_id: str, educator_id: str, institution: str) -> CloudEvent[Any]:
    data = CreditRecognized(
        recognition_id=recognition_id,
        certificate_id=certificate_id,
        educator_id=educator_id,
        institution=institution,
        receiving_institution="must",
        receiving_programme="MSc Education",
        credits=6,
        recognized_at=ts("2025-07-01T10:00:00+08:00"),
    )
    return _event(data)


def role_changed(
    educator_id: str, institution: str, role: str = "master_teacher", at: str = "2025-04-01T10:00:00+08:00", **kw: Any
) -> CloudEvent[Any]:
    data = EducatorRoleChanged(educator_id=educator_id, institution=institution, role=role, changed_at=ts(at))
    return _event(data, **kw)


def suspended(
    certificate_id: str, educator_id: str, institution: str, at: str = "2025-06-01T10:00:00+08:00", **kw: Any
) -> CloudEvent[Any]:
    data = CertificateSuspended(
        certificate_id=certificate_id, educator_id=educator_id, institution=institution, at=ts(at)
    )
    return _event(data, **kw)


def reinstated(
    certificate_id: str, educator_id: str, institution: str, at: str = "2025-06-10T10:00:00+08:00", **kw: Any
) -> CloudEvent[Any]:
    data = CertificateReinstated(
        certificate_id=certificate_id, educator_id=educator_id, institution=institution, at=ts(at)
    )
    return _event(data, **kw)


def session_held(
    session_id: str,
    master_teacher_id: str,
    institution: str,
    region: str = "Ulaanbaatar",
    mode: str = "online",
    on: str = "2025-05-10",
    language: str = "mn",
    **kw: Any,
) -> CloudEvent[Any]:
    data = TrainingSessionHeld(
        session_id=session_id,
        institution=institution,
        master_teacher_id=master_teacher_id,
        region=region,
        mode=mode,
        held_on=date.fromisoformat(on),
        language=language,
    )
    return _event(data, **kw)


def attended(session_id: str, educator_id: str, institution: str, **kw: Any) -> CloudEvent[Any]:
    return _event(TraineeAttended(session_id=session_id, institution=institution, educator_id=educator_id), **kw)


def practice(
    educator_id: str, institution: str, integrates_ai: bool = True, on: str = "2025-06-01", **kw: Any
) -> CloudEvent[Any]:
    data = PracticeIntegrationReported(
        educator_id=educator_id,
        institution=institution,
        integrates_ai=integrates_ai,
        reported_on=date.fromisoformat(on),
    )
    return _event(data, **kw)


def evaluated(
    educator_id: str,
    institution: str,
    course_id: str,
    content: int = 5,
    usefulness: int = 5,
    language: str = "mn",
    time: str = "2025-05-01T10:00:00+08:00",
    **kw: Any,
) -> CloudEvent[Any]:
    data = CourseEvaluated(
        educator_id=educator_id,
        institution=institution,
        course_id=course_id,
        language=language,
        content_rating=content,
        usefulness_rating=usefulness,
    )
    return _event(data, time=time, **kw)


def transfer_requested(
    request_id: str,
    educator_id: str,
    institution: str,
    receiving: str = "must",
    at: str = "2025-07-01T10:00:00+08:00",
    certificate_id: str = "cert",
    **kw: Any,
) -> CloudEvent[Any]:
    data = CreditTransferRequested(
        request_id=request_id,
        educator_id=educator_id,
        institution=institution,
        certificate_id=certificate_id,
        receiving_institution=receiving,
        receiving_programme="MSc Education",
        requested_at=ts(at),
    )
    return _event(data, **kw)


def transfer_decided(
    request_id: str,
    educator_id: str,
    institution: str,
    decision: str = "accepted",
    receiving: str = "must",
    credits: float | None = 6,
    at: str = "2025-07-10T10:00:00+08:00",
    **kw: Any,
) -> CloudEvent[Any]:
    data = CreditTransferDecided(
        request_id=request_id,
        educator_id=educator_id,
        institution=institution,
        receiving_institution=receiving,
        decision=decision,
        credits=credits,
        decided_at=ts(at),
    )
    return _event(data, **kw)


async def publish(
    nc: NATS, event: CloudEvent[Any], *, msg_id: str | None = None, extra_data: dict[str, Any] | None = None
) -> None:
    """Publish like a partner does; `msg_id` differs from the event id to get past JetStream's dedupe."""
    spec = BY_MODEL[type(event.data)]
    headers = event_headers(event)
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    body = event.to_json_bytes()
    if extra_data:
        doc = json.loads(body)
        doc["data"].update(extra_data)
        body = json.dumps(doc).encode()
    await nc.jetstream().publish(spec.subject(event.data.institution), body, headers=headers)


async def publish_all(nc: NATS, events: list[CloudEvent[Any]]) -> None:
    js = nc.jetstream()
    futures = []
    for event in events:
        spec = BY_MODEL[type(event.data)]
        futures.append(
            await js.publish_async(
                spec.subject(event.data.institution), event.to_json_bytes(), headers=event_headers(event)
            )
        )
    await asyncio.gather(*futures)


def institution_of(summary: dict[str, Any], code: str) -> dict[str, Any] | None:
    return next((i for i in summary["by_institution"] if i["institution"] == code), None)


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` (lifespan included) under uvicorn on a free port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped before starting")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
