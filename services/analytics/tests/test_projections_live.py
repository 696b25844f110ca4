"""Live projections against real NATS + PostgreSQL: exactly-once counts, order independence,
snapshots for late subscribers, and no personal data anywhere in analytics."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from nats.js.errors import NotFoundError

from iioe.envelope import event_headers, make_event
from iioe.events import EDUCATOR_CONTACT, EducatorContact
from iioe.subjects import ANALYTICS_STREAM, analytics_institution_subject, analytics_summary_subject
from services.analytics.main import create_app
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
    settings_for,
)
from tests.support.helpers import eventually, running_app

pytestmark = pytest.mark.integration


def code_for(ref: str, suffix: str = "") -> str:
    return f"x{ref}{suffix}"[:32]


async def wait_for_institution(http: Any, code: str, **expected: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        resp = await http.get(f"/v1/analytics/institutions/{code}")
        if resp.status_code != 200:
            return {}
        body: dict[str, Any] = resp.json()
        return body if all(body.get(k) == v for k, v in expected.items()) else {}

    try:
        return await eventually(probe, timeout=30, what=f"{code} to reach {expected}")
    except AssertionError:
        print((await http.get(f"/v1/analytics/institutions/{code}")).json())
        raise


async def test_duplicate_event_ids_and_redelivery_count_once(infra, database_url, nc, ref) -> None:
    code = code_for(ref)
    events = [registered(f"{ref}-e{i}", code, role="master_teacher" if i == 0 else "educator") for i in range(3)]
    events += [completed(f"{ref}-e0", code, course) for course in AI_COURSES]
    events.append(issued(f"{ref}-c0", f"{ref}-e0", code))
    settings = settings_for(infra, database_url, ref)
    async with running_app(create_app(settings)) as http:
        for event in events:
            await publish(nc, event)
        # the same CloudEvents again under new Nats-Msg-Ids: JetStream keeps them, analytics must not count them
        for event in events:
            await publish(nc, event, msg_id=f"resend-{event.id}")
        detail = await wait_for_institution(
            http, code, educators_registered=3, course_completions=3, certificates_issued=1
        )
        assert detail["master_teachers"] == 1
        assert detail["educators_completed_programme_courses"] == 1
        assert detail["funnel"]["registered"] == 3 and detail["funnel"]["started"] == 1
        assert detail["funnel"]["completed"] == 1 and detail["funnel"]["certified"] == 1
        assert detail["funnel"]["rates"] == {"started": 0.3333, "completed": 0.3333, "certified": 0.3333}

    # a new durable consumer re-delivers the whole stream to the same projections: nothing changes
    async with running_app(create_app(settings_for(infra, database_url, ref + "b"))) as http:

        async def consumed_everything() -> bool:
            health = (await http.get("/healthz")).json()
            processed = sum(c["processed"] for c in health["consumers"].values())
            info = await nc.jetstream().stream_info("IIOE_EVENTS")
            return processed >= info.state.messages - 50  # others may publish meanwhile

        await eventually(consumed_everything, timeout=60, what="the re-delivery of the stream")
        again = (await http.get(f"/v1/analytics/institutions/{code}")).json()
        for key in ("educators_registered", "course_completions", "certificates_issued", "master_teachers", "funnel"):
            assert again[key] == detail[key], key


async def test_out_of_order_events_give_exact_numbers(infra, database_url, nc, ref) -> None:
    code = code_for(ref)
    edu, late = f"{ref}-early-bird", f"{ref}-late"
    async with running_app(create_app(settings_for(infra, database_url, ref))) as http:
        # completions, a certificate and even its revocation before the registrations
        await publish_all(
            nc,
            [
                completed(edu, code, AI_COURSES[0], at="2025-04-02T10:00:00+08:00", score=40),
                completed(edu, code, AI_COURSES[1], at="2025-04-20T10:00:00+08:00"),
                completed(edu, code, AI_COURSES[2], at="2025-06-05T10:00:00+08:00"),
                completed(late, code, AI_COURSES[0]),
                revoked(f"{ref}-c-late", late, code),
                issued(f"{ref}-c-edu", edu, code, at="2025-06-06T10:00:00+08:00"),
            ],
        )
        detail = await wait_for_institution(http, code, course_completions=4, certificates_issued=1)
        assert detail["educators_registered"] == 0 and detail["educators_completed_programme_courses"] == 1
        assert detail["funnel"]["registered"] == 0 and detail["funnel"]["rates"]["started"] == 0
        assert detail["certificates_revoked"] == 0  # a revocation of a certificate not issued (yet)

        # an earlier attempt of the last course arrives late: the programme month moves to May
        await publish(nc, completed(edu, code, AI_COURSES[2], at="2025-05-15T10:00:00+08:00"))
        await publish_all(
            nc,
            [
                registered(edu, code, at="2025-03-31T20:00:00+00:00"),  # 1 April in Ulaanbaatar
                registered(late, code, at="2025-04-10T10:00:00+08:00", role="master_teacher"),
                issued(f"{ref}-c-late", late, code),
            ],
        )
        detail = await wait_for_institution(
            http, code, educators_registered=2, course_completions=5, certificates_revoked=1
        )
        assert detail["certificates_issued"] == 1 and detail["master_teachers"] == 1
        assert detail["funnel"] == {
            "registered": 2,
            "started": 2,
            "completed": 1,
            "certified": 1,
            "rates": {"started": 1.0, "completed": 0.5, "certified": 0.5},
        }
        months = {m["month"]: m for m in detail["months"]}
        assert months["2025-04"]["registrations"] == 2 and "2025-03" not in months
        assert months["2025-05"]["programme_completions"] == 1
        assert months["2025-06"]["course_completions"] == 1 and months["2025-06"]["programme_completions"] == 0
        assert months["2025-06"]["certificates_revoked"] == 1
        assert [c["course_id"] for c in detail["by_course"]] == sorted(AI_COURSES)

        ranking = (await http.get("/v1/analytics/rankings", params={"month": "2025-04"})).json()
        mine = [r for r in ranking["rankings"] if r["institution"] == code]
        assert mine and mine[0]["registrations"] == 2 and mine[0]["name"] is None
        ranks = [r["rank"] for r in ranking["rankings"]]
        assert ranks == sorted(ranks) and ranks[0] == 1

        summary = (await http.get("/v1/analytics/summary")).json()
        assert (institution_of(summary, code) or {})["certificates_revoked"] == 1
        assert summary["certificates_issued"] == sum(i["certificates_issued"] for i in summary["by_institution"])
        series = (await http.get("/v1/analytics/timeseries")).json()["months"]
        assert [m["month"] for m in series] == sorted(m["month"] for m in series)


async def test_late_subscriber_gets_latest_snapshot_and_bursts_are_coalesced(infra, database_url, nc, ref) -> None:
    code = code_for(ref)
    subject = analytics_institution_subject(code)
    received: list[dict[str, Any]] = []

    async def on_snapshot(msg: Any) -> None:
        received.append(json.loads(msg.data))

    sub = await nc.subscribe(subject, cb=on_snapshot)
    burst = [registered(f"{ref}-b{i}", code) for i in range(600)]
    burst += [completed(f"{ref}-b{i}", code, AI_COURSES[0]) for i in range(400)]
    async with running_app(create_app(settings_for(infra, database_url, ref))):
        await publish_all(nc, burst)

        async def final_snapshot() -> bool:
            return (
                bool(received)
                and received[-1]["educators_registered"] == 600
                and (received[-1]["course_completions"] == 400)
            )

        # snapshots go out only when the state changes, so nothing follows the final one
        await eventually(final_snapshot, timeout=60, what="the snapshot after the burst")
    await sub.unsubscribe()
    assert len(received) < 50, f"{len(received)} snapshots for 1000 events: not coalesced"

    # a dashboard that subscribes now still gets the latest state at once
    js = nc.jetstream()
    last = await js.get_last_msg(ANALYTICS_STREAM, subject)
    assert json.loads(last.data)["educators_registered"] == 600
    late = await js.subscribe(analytics_summary_subject(), stream=ANALYTICS_STREAM, ordered_consumer=True)
    first = await late.next_msg(timeout=5)
    await late.unsubscribe()
    assert (institution_of(json.loads(first.data), code) or {})["course_completions"] == 400


async def test_no_personal_data_in_analytics_storage_or_outputs(infra, database_url, nc, ref) -> None:
    code = code_for(ref)
    name, email = f"Батын Сарнай {ref}", f"sarnai.{ref}@must.edu.mn"
    contact = make_event(
        EducatorContact(educator_id=f"{ref}-p", institution=code, full_name=name, email=email, language="mn"),
        event_type=EDUCATOR_CONTACT.type,
        source="urn:iioe:test",
    )
    settings = settings_for(infra, database_url, ref)
    async with running_app(create_app(settings)) as http:
        js = nc.jetstream()
        await js.publish(EDUCATOR_CONTACT.subject(code), contact.to_json_bytes(), headers=event_headers(contact))
        leaky = {"full_name": name, "email": email, "note": email}
        await publish(nc, registered(f"{ref}-p", code), extra_data=leaky)
        await publish(nc, completed(f"{ref}-p", code, AI_COURSES[0]), extra_data=leaky)
        await publish(nc, issued(f"{ref}-pc", f"{ref}-p", code), extra_data=leaky)
        await publish(nc, recognized(f"{ref}-pr", f"{ref}-pc", f"{ref}-p", code))
        await wait_for_institution(http, code, educators_registered=1, course_completions=1, certificates_issued=1)
        outputs = [
            (await http.get(path)).text
            for path in (
                "/v1/analytics/summary",
                f"/v1/analytics/institutions/{code}",
                "/v1/analytics/timeseries",
                "/v1/analytics/rankings?month=2025-03",
            )
        ]

        async def institution_snapshot() -> str:
            try:
                msg = await js.get_last_msg(ANALYTICS_STREAM, analytics_institution_subject(code))
            except NotFoundError:
                return ""
            body = (msg.data or b"").decode()
            return body if json.loads(body or "{}").get("certificates_issued") == 1 else ""

        outputs.append(await eventually(institution_snapshot, what="the institution snapshot"))
        outputs.append((await js.get_last_msg(ANALYTICS_STREAM, analytics_summary_subject())).data.decode())

    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea')",
            settings.db_schema,
        )
        assert columns
        for col in columns:
            found = await conn.fetchval(
                f'SELECT count(*) FROM "{col["table_schema"]}"."{col["table_name"]}"'
                f' WHERE "{col["column_name"]}"::text ILIKE $1 OR "{col["column_name"]}"::text ILIKE $2',
                f"%{email}%",
                f"%{ref}@%",
            )
            assert found == 0, f"e-mail stored in {col['table_name']}.{col['column_name']}"
            found = await conn.fetchval(
                f'SELECT count(*) FROM "{col["table_schema"]}"."{col["table_name"]}"'
                f' WHERE "{col["column_name"]}"::text LIKE $1',
                "%Сарнай%",
            )
            assert found == 0, f"name stored in {col['table_name']}.{col['column_name']}"
    finally:
        await conn.close()
    for text in outputs:
        assert email not in text and "Сарнай" not in text and "sarnai" not in text
