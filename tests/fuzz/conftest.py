"""Fixtures of the HTTP fuzz tests: the three callers (no token, the institution `must`, an operator)
and the settings every service is built with here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.tokens import TokenGrant, put_grant
from tests.fuzz.harness import Caller
from tests.support.helpers import Infra

OPERATOR_TOKEN = "fuzz-operator-token"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
SCALE = max(1, int(os.environ.get("IIOE_FUZZ_SCALE", "1")))
"""Examples × this (`IIOE_FUZZ_SCALE=20 pytest tests/fuzz` for a deeper run); `make test` keeps 1 (< 60 s)."""


@pytest.fixture
async def must_token(nc: NATS, ref: str) -> str:
    """A bearer token of the institution `must` (a grant in the token bucket, as the CLI creates it)."""
    token = f"must-{ref}-fuzz-token"
    grant = TokenGrant(kind="institution", actor="partner-must", institution="must")
    await put_grant(nc.jetstream(), token, grant)
    return token


@pytest.fixture
def callers(must_token: str) -> list[Caller]:
    """Every operation three ways, within the suite's time: public operations answer the same whoever asks
    (so mostly anonymous examples), operations that need a token stop at 401 without one (a few suffice).
    Then requests the document calls invalid, as the operator (whose requests get furthest): a 4xx."""
    n = SCALE
    return [
        Caller("anonymous", None, secured_examples=5 * n, public_examples=25 * n),
        Caller("institution must", must_token, secured_examples=15 * n, public_examples=3 * n),
        Caller("operator", OPERATOR_TOKEN, secured_examples=25 * n, public_examples=3 * n),
        Caller("operator, invalid requests", OPERATOR_TOKEN, 10 * n, 10 * n, negative=True),
    ]


@pytest.fixture
def service_settings(infra: Infra, database_url: str, ref: str, tmp_path: Path, must_token: str) -> dict[str, Any]:
    """Settings shared by the four services: real servers, the operator token, no public rate limit
    (thousands of anonymous requests in a few seconds are the point here). The `must` grant exists
    before a service starts: its token registry follows the bucket only if the bucket is there."""
    return {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "IIOE_DATA_DIR": str(tmp_path / "data"),
        "consumer_prefix": f"{ref}-",
        "api_token": OPERATOR_TOKEN,
        "IIOE_PUBLIC_RATE_PER_SECOND": 0,
        "outbox_poll_seconds": 0.2,
    }
