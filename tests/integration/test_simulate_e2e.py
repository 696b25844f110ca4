"""`iioe simulate` against real servers: the driver talks to the real registration service over NATS."""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from iioe.envelope import CONTENT_TYPE
from iioe.subjects import EVENTS_STREAM, event_filter, event_subject
from iioe_tools.cli.simulate import run_simulation
from iioe_tools.simulation import build_scenario
from iioe_tools.simulation.driver import DriveOptions, drive
from services.analytics.main import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.certification.main import create_app as create_certification
from services.certification.settings import CertificationSettings
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration


OPERATOR_TOKEN = "operator-token-for-simulation-tests"


def unique_seed() -> int:
    return secrets.randbelow(2**31) + 10_000


def registration_settings(infra: Infra, database_url: str, ref: str) -> RegistrationSettings:
    return RegistrationSettings(
        NATS_URL=infra.nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{ref}-",
        outbox_poll_seconds=0.1,
        api_token=OPERATOR_TOKEN,
    )


async def test_driver_registers_and_publishes_through_the_public_interfaces(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    scenario = build_scenario(unique_seed(), 60)
    truth = scenario.ground_truth()
    async with running_app(create_app(registration_settings(infra, database_url, ref))) as http:
        result = await drive(scenario, nc, DriveOptions(concurrency=16))

        assert result.failures == []
        assert len(result.new_keys) == 60 and result.already_registered == 0
        assert set(result.educator_ids) == {e.key for e in scenario.educators}
        assert len(set(result.educator_ids.values())) == 60
        for educator in scenario.educators[:5]:
            url = f"/v1/educators/{result.educator_ids[educator.key]}"
            got = (await http.get(url, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})).json()
            assert got["institution"] == educator.institution and got["role"] == educator.role

        n_events = sum(len(e.attempts) for e in scenario.educators)
        assert result.events_published == n_events == truth.course_completions
        assert result.duplicates_sent == len(scenario.duplicate_event_ids) >= 1
        assert result.duplicates_dropped == result.duplicates_sent  # JetStream dropped every re-send

        ours = set(result.educator_ids.values())
        expected_ids = {a.event_id: (e, a) for e in scenario.educators for a in e.attempts}

        async def our_events() -> list[Any]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_filter("course_completed"))
            found = [m for m in msgs if m.json().get("subject") in ours]
            return found if len(found) >= n_events else []

        stored = await eventually(our_events, timeout=20, what="our CourseCompleted events on IIOE_EVENTS")
        assert len(stored) == n_events  # the duplicate deliveries were not stored
        for msg in stored:
            body = msg.json()
            educator, attempt = expected_ids[body["id"]]
            assert msg.headers["Nats-Msg-Id"] == body["id"]
            assert msg.headers["Content-Type"] == CONTENT_TYPE
            assert msg.subject == event_subject(educator.institution, "course_completed")
            assert body["type"] == "org.iioe.learning.course_completed.v1" and body["specversion"] == "1.0"
            assert body["source"] == f"urn:iioe:partner:{educator.institution}-lms"
            assert body["subject"] == body["data"]["educator_id"] == result.educator_ids[educator.key]
            assert body["data"]["score"] == attempt.score and body["data"]["course_id"] == attempt.course_id

        async def our_registrations() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_filter("educator_registered"))
            found = [m for m in msgs if m.json()["subject"] in ours]
            return found if len(found) >= 60 else []  # the outbox relay publishes after each commit

        registered = await eventually(our_registrations, timeout=20, what="our EducatorRegistered events")
        assert len(registered) == 60
        assert sum(m.json()["data"]["role"] == "master_teacher" for m in registered) == truth.master_teachers

        # a re-run of the same seed: same ids, nothing new, every event dropped as a duplicate
        again = await drive(scenario, nc)
        assert again.new_keys == [] and again.already_registered == 60
        assert again.educator_ids == result.educator_ids
        assert again.events_already_stored == n_events
        stored_after = [
            m
            for m in await stream_messages(nc, EVENTS_STREAM, event_filter("course_completed"))
            if m.json().get("subject") in ours
        ]
        assert len(stored_after) == n_events


def last_json(out: str) -> Any:
    """The `--json` report: the last top-level JSON object on stdout (service logs may precede it)."""
    return json.loads(out[out.rindex("\n{\n") + 1 :] if not out.startswith("{\n") else out)


async def test_simulate_end_to_end_with_certification_and_analytics(
    infra: Infra, database_url: str, ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common: dict[str, Any] = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "consumer_prefix": f"{ref}-",
        "outbox_poll_seconds": 0.1,
    }
    seed = unique_seed()
    args = argparse.Namespace(
        seed=seed,
        educators=60,
        nats_url=infra.nats_url,
        analytics_url="http://test",
        timeout=90.0,
        settle=1.0,
        concurrency=16,
        json=True,
        quiet=True,
        dry_run=False,
    )
    async with (
        running_app(create_app(RegistrationSettings(**common))),
        running_app(create_certification(CertificationSettings(**common))),
        running_app(create_analytics(AnalyticsSettings(**common))) as analytics,
    ):
        code = await run_simulation(args, http=analytics)
        report = last_json(capsys.readouterr().out)
        assert code == 0, report["comparison"]
        truth = build_scenario(seed, 60).ground_truth()
        assert report["expected_delta"]["certificates_issued"] == truth.certificates_issued == 17
        assert report["expected_delta"]["educators_registered"] == 60

        # the same seed again adds nothing, and says so
        code = await run_simulation(args, http=analytics)
        again = last_json(capsys.readouterr().out)
        assert code == 0, again["comparison"]
        assert again["expected_delta"]["educators_registered"] == 0
        assert again["drive"]["already_registered"] == 60
