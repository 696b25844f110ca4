"""The committed AsyncAPI document is the one the code generates (regenerate: `make asyncapi`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from iioe.events import ALL_EVENTS
from iioe_tools.asyncapi import asyncapi_yaml

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi" / "iioe-events.yaml"


def test_committed_asyncapi_matches_the_models() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == asyncapi_yaml(), "run `make asyncapi` and commit the result"


def test_asyncapi_names_every_event_subject_and_the_register_command() -> None:
    doc = yaml.safe_load(asyncapi_yaml())
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert "iioe.commands.{institution}.register_educator" in addresses
    for spec in ALL_EVENTS:
        expected = spec.subject("inst").replace(".inst.", ".{institution}.")
        assert expected in addresses, expected
