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
from iioe_tools.simulation.programme_activity import build_programme_activity
from iioe_tools.simulation.programme_driver import drive_programme
from services.analytics.main import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.certification.main import create_app as create_certification
from services.certification.settings import CertificationSettings
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages
from tests.support.simulation import ANALYTICS_HAS_PROGRAMME, PENDING_REASON, unmatched_rows

pytestmark = pytest.mark.integration


OPERATOR_TOKEN = "operator-token-for-simulation-tests"
PROGRAMME_TYPES = (
    "training_session_held",
    "trainee_attended",
    "portfolio_entry_added",
    "practice_integration_reported",
    "course_evaluated",
)


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

        # the programme: promotions through change_role, then every programme event on IIOE_EVENTS
        activity = build_programme_activity(scenario)
        programme = await drive_programme(activity, nc, result.educator_ids)
        assert programme.promotion_failures == [] and programme.skipped_unregistered == 0
        assert programme.promotions_changed == len(activity.promotions) >= 1
        for key in activity.promotions:
            url = f"/v1/educators/{result.educator_ids[key]}"
            got = (await http.get(url, headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})).json()
            assert got["role"] == "master_teacher"
        promoted_ids = {result.educator_ids[k] for k in activity.promotions}

        async def role_changes() -> list[StoredMessage]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_filter("educator_role_changed"))
            found = [m for m in msgs if m.json()["subject"] in promoted_ids]
            return found if len(found) >= len(promoted_ids) else []

        changed = await eventually(role_changes, timeout=20, what="EducatorRoleChanged of the promoted trainees")
        assert {m.json()["data"]["role"] for m in changed} == {"master_teacher"} and len(changed) == len(promoted_ids)

        n_programme = activity.event_count()
        assert programme.events_published == n_programme and programme.events_already_stored == 0
        assert programme.duplicates_sent >= 1 and programme.duplicates_dropped == programme.duplicates_sent
        wanted = {
            *(x.event_id for x in activity.sessions),
            *(x.event_id for x in activity.attendances),
            *(x.event_id for x in activity.portfolio),
            *(x.event_id for x in activity.practice),
            *(x.event_id for x in activity.ratings),
        }

        async def programme_events() -> list[StoredMessage]:
            found = [
                m
                for name in PROGRAMME_TYPES
                for m in await stream_messages(nc, EVENTS_STREAM, event_filter(name))
                if m.headers.get("Nats-Msg-Id") in wanted
            ]
            return found if len(found) >= n_programme else []

        stored_programme = await eventually(programme_events, timeout=20, what="the programme events on IIOE_EVENTS")
        assert len(stored_programme) == n_programme  # the duplicate deliveries were not stored
        trainee_institution = {result.educator_ids[k]: p.institution for k, p in activity.profiles.items()}
        for msg in stored_programme:
            body = msg.json()
            assert msg.headers["Nats-Msg-Id"] == body["id"] and msg.headers["Content-Type"] == CONTENT_TYPE
            assert msg.subject.split(".")[2] == body["data"]["institution"]
            if body["type"] == "org.iioe.cascade.trainee_attended.v1":
                assert body["data"]["institution"] == trainee_institution[body["data"]["educator_id"]]

        # a re-run of the same seed: same ids, nothing new, every event dropped as a duplicate
        again = await drive(scenario, nc)
        assert again.new_keys == [] and again.already_registered == 60
        assert again.educator_ids == result.educator_ids
        assert again.events_already_stored == n_events
        programme_again = await drive_programme(activity, nc, again.educator_ids)
        assert programme_again.promotions_unchanged == len(activity.promotions)
        assert programme_again.promotions_changed == 0
        assert programme_again.events_already_stored == n_programme
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
        # without the §10 analytics the run ends in a mismatch at the timeout; the rest converges well before
        timeout=90.0 if ANALYTICS_HAS_PROGRAMME else 45.0,
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
        pending = unmatched_rows(report, code)
        scenario = build_scenario(seed, 60)
        truth = scenario.ground_truth()
        programme = build_programme_activity(scenario).ground_truth()
        assert report["expected_delta"]["certificates_issued"] == truth.certificates_issued == 17
        assert report["expected_delta"]["educators_registered"] == 60
        assert report["expected_delta"]["master_teachers"] == truth.master_teachers + programme.promoted
        assert report["programme_expected_delta"] == programme.model_dump()
        assert programme.promoted >= 1 and programme.training_sessions >= 1 and programme.course_ratings >= 1
        assert report["programme_drive"]["promotions_changed"] == programme.promoted
        assert report["programme_drive"]["promotion_failures"] == []

        if not pending:
            # the same seed again adds nothing, and says so (only meaningful once every row can match)
            code = await run_simulation(args, http=analytics)
            again = last_json(capsys.readouterr().out)
            assert code == 0, again["comparison"]
            assert again["expected_delta"]["educators_registered"] == 0
            assert again["drive"]["already_registered"] == 60
            assert again["programme_expected_delta"]["training_sessions"] == 0
            assert again["programme_drive"]["promotions_unchanged"] == programme.promoted
    if pending:
        pytest.xfail(f"{PENDING_REASON}; not yet matching: {sorted(pending)}")
