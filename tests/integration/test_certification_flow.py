"""Certification end to end on a real nats-server and PostgreSQL: events in, certificates out."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.dlq import H_CONSUMER, H_REASON, H_SUBJECT
from iioe.subjects import DLQ_STREAM, EVENTS_STREAM, dlq_filter, dlq_subject, event_subject
from services.certification.main import create_app
from tests.support.certification import (
    AI_COURSES,
    OPERATOR_TOKEN,
    complete,
    issued_on_stream,
    outbox_drained,
    register,
    settings_for,
    wait_attempts,
)
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def app_for(infra: Infra, database_url: str, ref: str, **overrides):
    return create_app(settings_for(infra.nats_url, database_url, f"{ref}-", **overrides))


async def test_three_ai_courses_at_80_issue_exactly_one_certificate(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        for course, score in zip(AI_COURSES, (80, 92.5, 100), strict=True):
            await complete(nc, educator, course, score)

        issued = await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued")
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        issued = await issued_on_stream(nc, educator)
        assert len(issued) == 1
        event = issued[0].json()
        data = event["data"]
        assert issued[0].subject == event_subject("must", "certificate_issued")
        assert issued[0].headers["Nats-Msg-Id"] == event["id"] == f"certificate-issued:{data['certificate_id']}"
        assert event["type"] == "org.iioe.certification.certificate_issued.v1"
        assert event["source"] == "urn:iioe:service:certification" and event["subject"] == educator
        assert data["programme_id"] == "ai-in-higher-education" and data["institution"] == "must"
        assert data["course_ids"] == list(AI_COURSES) and data["credits"] == 3
        assert data["credential"].count(".") == 2

        cert = (await http.get(f"/v1/certificates/{data['certificate_id']}")).json()
        assert cert["status"] == "active" and cert["credential"] == data["credential"]
        assert cert["programme_names"]["en"] == "AI in Higher Education"
        listed = (await http.get(f"/v1/educators/{educator}/certificates", headers=AUTH)).json()
        assert [c["certificate_id"] for c in listed["certificates"]] == [data["certificate_id"]]
        verdict = (await http.post("/v1/verify", json={"credential": data["credential"]})).json()
        assert verdict["status"] == "valid" and verdict["educator_id"] == educator
        assert verdict["programme_id"] == "ai-in-higher-education" and verdict["credits"] == 3


async def test_a_79_blocks_the_certificate_until_a_better_attempt(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        await complete(nc, educator, "genai-fundamentals", 95)
        await complete(nc, educator, "teaching-with-ai", 79)
        await complete(nc, educator, "future-classroom", 88)
        progress = await wait_attempts(http, educator, "future-classroom", 1)
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        assert await issued_on_stream(nc, educator) == []
        ai = next(p for p in progress["programmes"] if p["programme_id"] == "ai-in-higher-education")
        assert ai["status"] == "in_progress" and ai["missing_courses"] == ["teaching-with-ai"]
        assert ai["below_threshold"] == ["teaching-with-ai"]

        await complete(nc, educator, "teaching-with-ai", 60)  # a worse retake changes nothing
        progress = await wait_attempts(http, educator, "teaching-with-ai", 2)
        assert (await http.get(f"/v1/educators/{educator}/certificates", headers=AUTH)).json()["certificates"] == []

        await complete(nc, educator, "teaching-with-ai", 81)
        await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued after the better attempt")
        progress = (await http.get(f"/v1/educators/{educator}/progress", headers=AUTH)).json()
        ai = next(p for p in progress["programmes"] if p["programme_id"] == "ai-in-higher-education")
        course = next(c for c in ai["courses"] if c["course_id"] == "teaching-with-ai")
        assert ai["status"] == "certified" and course == {**course, "best_score": 81, "attempts": 3, "passed": True}


async def test_duplicate_completions_issue_one_certificate(infra: Infra, database_url: str, nc: NATS, ref: str) -> None:
    """The same CloudEvent id re-sent with another Nats-Msg-Id passes JetStream but not the inbox."""
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        for course in AI_COURSES:
            for copy in range(3):
                await complete(nc, educator, course, 90, event_id=f"{ref}-{course}", msg_id=f"{ref}-{course}-{copy}")
        await complete(nc, educator, "genai-fundamentals", 10)  # sentinel: everything before it is processed
        progress = await wait_attempts(http, educator, "genai-fundamentals", 2)
        ai = next(p for p in progress["programmes"] if p["programme_id"] == "ai-in-higher-education")
        assert [c["attempts"] for c in ai["courses"]] == [2, 1, 1]
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        assert len(await issued_on_stream(nc, educator)) == 1


async def test_replaying_the_stream_issues_no_second_certificate(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    """A second instance with a new durable (a full replay from the stream's start) on the same database."""
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        for course in AI_COURSES:
            await complete(nc, educator, course, 85)
        await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued")
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        first = (await http.get(f"/v1/educators/{educator}/certificates", headers=AUTH)).json()["certificates"]

    async with running_app(app_for(infra, database_url, f"{ref}-replay")) as http:
        await complete(nc, educator, "future-classroom", 50)  # sentinel after the replayed history
        await wait_attempts(http, educator, "future-classroom", 2)
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        again = (await http.get(f"/v1/educators/{educator}/certificates", headers=AUTH)).json()["certificates"]
        assert again == first
    assert len(await issued_on_stream(nc, educator)) == 1


async def test_completion_before_registration_is_honoured(infra: Infra, database_url: str, nc: NATS, ref: str) -> None:
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        for course in AI_COURSES:
            await complete(nc, educator, course, 90, institution="num")
        await register(nc, educator, institution="num", language="mn")
        issued = await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued")
        assert issued[0].subject == event_subject("num", "certificate_issued")
        progress = await wait_attempts(http, educator, "genai-fundamentals", 1)
        assert progress["pending_completions"] == 0 and progress["institution"] == "num"


async def test_tiered_track_honours_prerequisites(infra: Infra, database_url: str, nc: NATS, ref: str) -> None:
    educator = f"edu-{ref}"
    intermediate = ("adp-blended-learning", "adp-active-learning", "adp-learning-analytics")
    foundational = ("dte-online-course-design", "dte-digital-tools", "dte-online-assessment")
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        for course in intermediate:
            await complete(nc, educator, course, 90)
        progress = await wait_attempts(http, educator, intermediate[-1], 1)
        adp = next(p for p in progress["programmes"] if p["programme_id"] == "applied-digital-pedagogy")
        assert adp["missing_courses"] == [] and adp["missing_prerequisites"] == ["digital-teaching-essentials"]
        assert adp["status"] == "in_progress"
        assert (await http.get(f"/v1/educators/{educator}/certificates", headers=AUTH)).json()["certificates"] == []

        for course in foundational:
            await complete(nc, educator, course, 85)

        async def two_issued() -> list[StoredMessage]:
            found = await issued_on_stream(nc, educator)
            return found if len(found) >= 2 else []

        issued = await eventually(two_issued, what="foundational and intermediate certificates")
        assert sorted(m.json()["data"]["programme_id"] for m in issued) == [
            "applied-digital-pedagogy",
            "digital-teaching-essentials",
        ]


async def test_revocation_flips_verification_and_is_idempotent(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    educator = f"edu-{ref}"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        for course in AI_COURSES:
            await complete(nc, educator, course, 99)
        issued = await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued")
        data = issued[0].json()["data"]
        cert_id, credential = data["certificate_id"], data["credential"]
        url = f"/v1/certificates/{cert_id}/revoke"

        assert (await http.post(url, json={"reason": "x"})).status_code == 401
        wrong = await http.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
        assert (await http.post("/v1/keys/rotate")).status_code == 401
        assert (await http.post(f"/v1/certificates/{cert_id}/recognitions", json={})).status_code == 401

        recognition = {"receiving_institution": "num", "receiving_programme": "MEd in Educational Technology"}
        created = await http.post(f"/v1/certificates/{cert_id}/recognitions", json=recognition, headers=AUTH)
        assert created.status_code == 201, created.text
        assert created.json()["credits"] == 3
        same = await http.post(f"/v1/certificates/{cert_id}/recognitions", json=recognition, headers=AUTH)
        assert same.status_code == 200 and same.json() == created.json()
        too_many = await http.post(
            f"/v1/certificates/{cert_id}/recognitions", json={**recognition, "credits": 4}, headers=AUTH
        )
        assert too_many.status_code == 422 and too_many.json()["error"]["code"] == "credits_exceed_certificate"

        first = await http.post(url, json={"reason": "academic misconduct"}, headers=AUTH)
        assert first.status_code == 200, first.text
        second = await http.post(url, json={"reason": "another reason"}, headers=AUTH)
        assert second.status_code == 200 and second.json() == first.json()
        assert second.json()["reason"] == "academic misconduct"
        missing = await http.post("/v1/certificates/cert-nope/revoke", json={"reason": "x"}, headers=AUTH)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "certificate_not_found"

        verdict = (await http.post("/v1/verify", json={"credential": credential})).json()
        assert verdict["status"] == "revoked" and verdict["reason"] == "academic misconduct"
        assert verdict["certificate_id"] == cert_id and verdict["revoked_at"]
        cert = (await http.get(f"/v1/certificates/{cert_id}")).json()
        assert cert["status"] == "revoked" and cert["revocation"]["reason"] == "academic misconduct"
        after = await http.post(
            f"/v1/certificates/{cert_id}/recognitions", json={**recognition, "receiving_programme": "MSc"}, headers=AUTH
        )
        assert after.status_code == 409 and after.json()["error"]["code"] == "certificate_revoked"

        async def revoked_event() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_subject("must", "certificate_revoked"))
            return [m for m in msgs if m.json()["data"]["certificate_id"] == cert_id]

        revoked = await eventually(revoked_event, what="CertificateRevoked")
        await eventually(lambda: outbox_drained(http), what="outbox drained")
        assert len(await revoked_event()) == 1 and revoked[0].json()["data"]["reason"] == "academic misconduct"

        assert (await http.post("/v1/verify", json={"credential": "not.a.jwt"})).json()["status"] == "invalid"
        assert (await http.post("/v1/verify", json={"token": credential})).status_code == 422


async def test_bad_completions_are_dead_lettered_with_reasons(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    educator, early = f"edu-{ref}", f"edu-{ref}-early"
    durable = f"{ref}-certification-progress"
    async with running_app(app_for(infra, database_url, ref)) as http:
        await register(nc, educator)
        unknown = await complete(nc, educator, "underwater-basket-weaving", 90)
        out_of_range = await complete(nc, educator, "genai-fundamentals", 140)
        mismatch = await complete(nc, educator, "genai-fundamentals", 90, institution="num")
        parked = await complete(nc, early, "genai-fundamentals", 90, institution="num")
        await register(nc, early, institution="must")
        expected = {
            unknown["id"]: "unknown_course",
            out_of_range["id"]: "score_out_of_range",
            mismatch["id"]: "institution_mismatch",
            parked["id"]: "institution_mismatch",
        }

        async def letters() -> dict[str, StoredMessage]:
            msgs = await stream_messages(nc, DLQ_STREAM, dlq_filter(durable))
            # other tests dead-letter junk that is not JSON on the shared stream: match by our ids only
            mine = {eid: m for m in msgs for eid in expected if f'"{eid}"'.encode() in m.data}
            return mine if len(mine) == len(expected) else {}

        found = await eventually(letters, timeout=30, what="four dead letters")
        for event_id, reason in expected.items():
            letter = found[event_id]
            assert letter.headers[H_REASON] == reason
            assert letter.subject == dlq_subject(durable, reason)
            assert letter.headers[H_CONSUMER] == durable
            assert letter.headers[H_SUBJECT].startswith("iioe.events.")
        progress = (await http.get(f"/v1/educators/{early}/progress", headers=AUTH)).json()
        assert progress["pending_completions"] == 0
        assert all(c["attempts"] == 0 for p in progress["programmes"] for c in p["courses"])
