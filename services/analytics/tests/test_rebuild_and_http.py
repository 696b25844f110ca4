"""Rebuild equals live; the HTTP API, its errors, the dashboard files and the SSE stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.subjects import EVENTS_STREAM
from services.analytics.main import create_app
from services.analytics.rebuild import rebuild
from services.analytics.tests.demo import cascade_events
from services.analytics.tests.helpers import (
    AI_COURSES,
    completed,
    institution_of,
    issued,
    publish,
    publish_all,
    recognized,
    registered,
    revoked,
    serving,
    settings_for,
)
from tests.support.helpers import eventually, running_app

pytestmark = pytest.mark.integration
V11_REPORTS = ("cascade", "recognition", "practice", "feedback")


async def caught_up(nc: NATS, app: Any) -> bool:
    """True when the app's durable consumer has nothing pending or unacknowledged."""
    durable = app.state.analytics.runtime.consumers[0].spec.durable
    info = await nc.jetstream().consumer_info(EVENTS_STREAM, durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


def without_time(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "generated_at"}


def mixed_events(ref: str, code: str) -> list[Any]:
    events: list[Any] = []
    for i in range(30):
        edu = f"{ref}-r{i}"
        month = 3 + i % 4
        events.append(
            registered(
                edu,
                code,
                at=f"2025-0{month}-0{1 + i % 9}T09:00:00+08:00",
                role=["educator", "master_teacher"][i % 5 == 0],
            )
        )
        for course in AI_COURSES[: i % 4]:
            events.append(completed(edu, code, course, at=f"2025-0{month + 1}-1{i % 9}T09:00:00+08:00", score=50 + i))
        if i % 4 == 3:
            events.append(issued(f"{ref}-cert{i}", edu, code, at=f"2025-0{month + 2}-01T09:00:00+08:00"))
        if i % 8 == 7:
            events.append(revoked(f"{ref}-cert{i}", edu, code, at=f"2025-0{month + 2}-20T09:00:00+08:00"))
    events.append(recognized(f"{ref}-rec", f"{ref}-cert3", f"{ref}-r3", code))
    return events


async def test_rebuild_ends_with_the_live_numbers_and_live_goes_on(infra, database_url, nc, ref) -> None:
    code = f"x{ref}"
    settings = settings_for(infra, database_url, ref)
    events = mixed_events(ref, code) + cascade_events(ref, f"y{ref}", f"z{ref}")  # v1.1 facts too
    app = create_app(settings)
    async with running_app(app) as http:
        await publish_all(nc, list(reversed(events)))  # the reverse of the causal order
        for event in events[:10]:  # duplicates past JetStream's dedupe
            await publish(nc, event, msg_id=f"again-{event.id}")
        await eventually(lambda: caught_up(nc, app), timeout=60, what="live consumer caught up")
        live_summary = without_time((await http.get("/v1/analytics/summary")).json())
        live_series = (await http.get("/v1/analytics/timeseries")).json()
        live_detail = without_time((await http.get(f"/v1/analytics/institutions/{code}")).json())
        live_v11 = {p: without_time((await http.get(f"/v1/analytics/{p}")).json()) for p in V11_REPORTS}
        assert any(r["second_generation_reach"] for r in live_v11["cascade"]["master_teachers"])
        assert live_detail["educators_registered"] == 30 and live_detail["certificates_revoked"] == 3

        result = await rebuild(settings, batch_size=7)  # small batches: many transactions, same result
        assert result.events_read >= len(events) + 10 and result.duplicates >= 10

        assert without_time((await http.get("/v1/analytics/summary")).json()) == live_summary
        assert (await http.get("/v1/analytics/timeseries")).json() == live_series
        assert without_time((await http.get(f"/v1/analytics/institutions/{code}")).json()) == live_detail
        for path, body in live_v11.items():
            assert without_time((await http.get(f"/v1/analytics/{path}")).json()) == body, path

        # the live consumer keeps projecting into the swapped-in tables, still exactly once
        await publish(nc, registered(f"{ref}-after", code))
        await publish(nc, events[0], msg_id=f"third-{events[0].id}")

        async def counted() -> bool:
            body = (await http.get(f"/v1/analytics/institutions/{code}")).json()
            return bool(body["educators_registered"] == 31)

        await eventually(counted, timeout=30, what="an event after the rebuild")
        await eventually(lambda: caught_up(nc, app), timeout=30, what="live consumer caught up")
        assert (await http.get(f"/v1/analytics/institutions/{code}")).json()["course_completions"] == live_detail[
            "course_completions"
        ]

    conn = await asyncpg.connect(database_url)
    try:
        schemas = {r["nspname"] for r in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()
    assert "analytics" in schemas and not [s for s in schemas if s.startswith("analytics_")]


async def test_http_errors_catalogue_names_and_dashboard_files(infra, database_url, ref) -> None:
    async with running_app(create_app(settings_for(infra, database_url, ref))) as http:
        unknown = await http.get(f"/v1/analytics/institutions/nowhere-{ref}")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_institution"
        must = await http.get("/v1/analytics/institutions/must")
        assert must.status_code == 200
        assert must.json()["name"] == "Mongolian University of Science and Technology"
        assert must.json()["name_mn"] == "Шинжлэх Ухаан Технологийн Их Сургууль"
        assert must.json()["name_ru"] == "Монгольский государственный университет науки и технологий"
        for bad in ("2025-13", "2025-3", "march"):
            resp = await http.get("/v1/analytics/rankings", params={"month": bad})
            assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_month", bad
        for params in ({"from": "2025-13"}, {"to": "1999-01"}, {"from": "9999-01"}):
            resp = await http.get("/v1/analytics/timeseries", params=params)
            assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_month", params
        chosen = await http.get("/v1/analytics/timeseries", params={"from": "2024-11", "to": "2025-01"})
        assert [m["month"] for m in chosen.json()["months"]] == ["2024-11", "2024-12", "2025-01"]
        ok = await http.get("/v1/analytics/rankings", params={"month": "1999-01"})
        assert ok.json() == {"month": "1999-01", "rankings": []}
        summary = (await http.get("/v1/analytics/summary")).json()
        for key in (
            "educators_registered",
            "institutions_active",
            "course_completions",
            "educators_completed_programme_courses",
            "certificates_issued",
            "certificates_revoked",
            "master_teachers",
            "funnel",
            "by_institution",
            "generated_at",
        ):
            assert key in summary
        assert set(summary["funnel"]["rates"]) == {"started", "completed", "certified"}
        assert (await http.get("/healthz")).status_code == 200
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert 'id="kpi-educators_registered"' in page.text
        assert (await http.get("/static/dashboard.js")).status_code == 200
        assert (await http.get("/static/dashboard.css")).status_code == 200


async def test_stream_sends_the_summary_at_once_then_each_new_snapshot(infra, database_url, nc, ref) -> None:
    code = f"x{ref}"
    async with serving(create_app(settings_for(infra, database_url, ref))) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            async with client.stream("GET", "/v1/analytics/stream") as resp:
                assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.aiter_lines()

                async def next_summary() -> dict[str, Any]:
                    event = None
                    async for line in lines:
                        if line.startswith("event:"):
                            event = line.split(":", 1)[1].strip()
                        elif line.startswith("data:") and event == "summary":
                            body: dict[str, Any] = json.loads(line.split(":", 1)[1])
                            return body
                    raise AssertionError("stream ended")

                first = await asyncio.wait_for(next_summary(), 30)
                assert "educators_registered" in first and institution_of(first, code) is None
                await publish(nc, registered(f"{ref}-sse", code))

                async def until_counted() -> dict[str, Any]:
                    while True:
                        body = await next_summary()
                        mine = institution_of(body, code)
                        if mine and mine["educators_registered"] == 1:
                            return body

                await asyncio.wait_for(until_counted(), 30)
