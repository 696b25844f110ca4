"""The rebuild's parser accepts and rejects exactly what the live path does (`parse_event` + `projection_event`).

The generators are the contract's own (`tests/contract/test_parsing_properties.py`): valid events
of every type, arbitrary bytes and JSON, mutated envelopes and data, hostile JSON fragments, and
events on a subject that does not fit. For each input both parsers must give the same event, or
both refuse it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iioe.envelope import CloudEvent
from iioe.events import ALL_EVENTS, EventSpec
from iioe.parsing import InvalidEvent, parse_event
from iioe.runtime.consumer import Unprocessable
from iioe.subjects import MAX_EVENT_BYTES
from services.analytics.domain import ProjectionEvent
from services.analytics.handlers import projection_event
from services.analytics.replay_parsing import _plainly_valid, parse_projection_event
from tests.contract.test_parsing_properties import (
    BOUNDED,
    hostile_fragments,
    json_values,
    mutated,
    valid_events,
    with_hostile_fragment,
)

MISFITS = ("iioe.events.other.{name}.v{major}", "iioe.events.{inst}.{name}.v9", "iioe.events.{inst}.x.v1")
"""Subjects of another institution, another major version, another type."""
GOLDEN = sorted((Path(__file__).parents[3] / "tests" / "contract" / "golden").glob("*.json"))


def live(raw: bytes, subject: str) -> ProjectionEvent | None:
    """What the live consumer projects (None: it dead-letters the message)."""
    try:
        spec, event = parse_event(raw, subject)
        return projection_event(spec, event.id, event.data, event.time, event.source)
    except (InvalidEvent, Unprocessable):
        return None


def replay(raw: bytes, subject: str) -> ProjectionEvent | None:
    try:
        return parse_projection_event(raw, subject)
    except (InvalidEvent, Unprocessable):
        return None


def assert_same(raw: bytes, subject: str) -> ProjectionEvent | None:
    expected = live(raw, subject)
    assert replay(raw, subject) == expected
    fast = _plainly_valid(raw, subject)
    assert fast is None or fast == expected  # the fast path never accepts what the live path refuses
    return expected


@pytest.mark.parametrize("spec", ALL_EVENTS, ids=[spec.name for spec in ALL_EVENTS])
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_events_of_every_type_take_the_fast_path(spec: EventSpec, data: st.DataObject) -> None:
    _, event, subject = data.draw(valid_events((spec,)))
    raw = event.to_json_bytes()
    expected = assert_same(raw, subject)
    if spec.contact:
        assert expected is None  # personal data never reaches the projections
    elif len(raw) <= MAX_EVENT_BYTES and b"\\u" not in raw:
        assert expected is not None and _plainly_valid(raw, subject) == expected


@BOUNDED
@given(raw=st.binary(max_size=512), subject=st.text(max_size=60))
def test_arbitrary_bytes(raw: bytes, subject: str) -> None:
    assert_same(raw, subject)


@BOUNDED
@given(value=json_values)
def test_arbitrary_json(value: Any) -> None:
    assert_same(json.dumps(value).encode(), "iioe.events.must.course_completed.v1")


@BOUNDED
@given(
    generated=valid_events(),
    level=st.sampled_from(["envelope", "data"]),
    index=st.integers(0, 20),
    new_key=st.none() | st.text(min_size=1, max_size=20),
    value=json_values,
    delete=st.booleans(),
)
def test_mutated_events(
    generated: tuple[EventSpec, CloudEvent[Any], str],
    level: str,
    index: int,
    new_key: str | None,
    value: Any,
    delete: bool,
) -> None:
    _, event, subject = generated
    assert_same(mutated(event, level, index, new_key, value, delete), subject)


@BOUNDED
@given(
    sample=st.sampled_from(GOLDEN),
    where=st.sampled_from(["extension", "data_extra", "data_field", "envelope_field"]),
    index=st.integers(0, 20),
    fragment=hostile_fragments,
)
def test_hostile_json(sample: Path, where: str, index: int, fragment: str) -> None:
    assert_same(*with_hostile_fragment(sample, where, index, fragment))


@BOUNDED
@given(
    generated=valid_events(),
    subject=st.sampled_from(MISFITS) | st.text(max_size=60),
)
def test_events_on_a_subject_that_does_not_fit(generated: tuple[EventSpec, CloudEvent[Any], str], subject: str) -> None:
    spec, event, _ = generated
    wrong = (
        subject.format(name=spec.name, major=spec.major, inst=event.data.institution) if subject in MISFITS else subject
    )
    assert_same(event.to_json_bytes(), wrong)


@pytest.mark.parametrize("sample", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_samples_and_their_edge_cases(sample: Path) -> None:
    golden = json.loads(sample.read_text(encoding="utf-8"))
    event, subject = golden["event"], golden["subject"]
    raw = json.dumps(event).encode()
    assert_same(raw, subject)
    variants = [
        {k: v for k, v in event.items() if k != "specversion"},  # the model has a default; the contract does not
        {**event, "specversion": "0.3"},
        {**event, "type": 1},
        {**event, "data": None},
        [event],
    ]
    for variant in variants:
        assert_same(json.dumps(variant).encode(), subject)
    assert_same(b"\xef\xbb\xbf" + raw, subject)  # a UTF-8 byte order mark
    assert_same(raw.replace(b"{", b"{" + b" " * (MAX_EVENT_BYTES - len(raw) + 1), 1), subject)  # too large
    assert_same(raw[:-1] + b', "deep": ' + b"[" * 70 + b"]" * 70 + b"}", subject)
