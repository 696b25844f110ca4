"""`iioe simulate --scale 2` against real servers: two shards driven one after the other, checked exactly."""

from __future__ import annotations

import argparse
import json
import secrets
from typing import Any

import pytest

from iioe_tools.cli.simulate import run_simulation
from iioe_tools.simulation.scenario import ScaledScenario
from services.analytics.main import create_app as create_analytics
from services.analytics.settings import AnalyticsSettings
from services.certification.main import create_app as create_certification
from services.certification.settings import CertificationSettings
from services.registration.main import create_app as create_registration
from services.registration.settings import RegistrationSettings
from tests.support.helpers import Infra, running_app

pytestmark = pytest.mark.integration


def last_json(out: str) -> Any:
    return json.loads(out[out.rindex("\n{\n") + 1 :] if not out.startswith("{\n") else out)


async def test_scaled_simulation_matches_analytics_exactly(
    infra: Infra, database_url: str, ref: str, capsys: pytest.CaptureFixture[str]
) -> None:
    common: dict[str, Any] = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "consumer_prefix": f"{ref}-",
        "outbox_poll_seconds": 0.5,
    }
    seed = secrets.randbelow(2**31) + 10_000
    args = argparse.Namespace(
        seed=seed,
        educators=50,
        scale=2,
        nats_url=infra.nats_url,
        analytics_url="http://test",
        timeout=60.0,
        settle=1.0,
        concurrency=16,
        json=True,
        quiet=True,
        dry_run=False,
    )
    truth = ScaledScenario(seed, 50, 2).ground_truth()
    async with (
        running_app(create_registration(RegistrationSettings(**common))),
        running_app(create_certification(CertificationSettings(**common))),
        running_app(create_analytics(AnalyticsSettings(**common))) as analytics,
    ):
        code = await run_simulation(args, http=analytics)
        report = last_json(capsys.readouterr().out)
        assert code == 0, report["comparison"]
        assert report["scale"] == 2 and report["educators"] == 100
        assert report["expected_delta"]["educators_registered"] == 100
        assert report["expected_delta"]["certificates_issued"] == truth.certificates_issued
        assert report["drive"]["events_published"] == truth.course_completions

        code = await run_simulation(args, http=analytics)  # both shards again: nothing new
        again = last_json(capsys.readouterr().out)
        assert code == 0, again["comparison"]
        assert again["expected_delta"]["educators_registered"] == 0
        assert again["drive"]["already_registered"] == 100
