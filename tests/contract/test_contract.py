"""Contract v1: envelope round trip, schema compatibility, golden samples, the subject rule."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iioe.envelope import CloudEvent, make_event
from iioe.events import ALL_EVENTS, BY_TYPE, COURSE_COMPLETED, EDUCATOR_REGISTERED, EducatorRegistered
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason
from iioe.schemas import SNAPSHOT_DIR, compatibility_problems, current_schemas, snapshot_path
from iioe.subjects import (
    InvalidSubjectPart,
    contact_subject,
    event_subject,
    parse_contact_subject,
    parse_event_subject,
)

GOLDEN = sorted((Path(__file__).parent / "golden").glob("*.json"))


def test_every_event_type_has_a_committed_schema_snapshot() -> None:
    for spec in ALL_EVENTS:
        assert snapshot_path(spec.type).exists(), f"run `python -m iioe.schemas --write` for {spec.type}"


@pytest.mark.parametrize("event_type", [spec.type for spec in ALL_EVENTS])
def test_current_schema_is_an_additive_change_of_the_snapshot(event_type: str) -> None:
    snapshot = json.loads(snapshot_path(event_type).read_text(encoding="utf-8"))
    assert compatibility_problems(snapshot, current_schemas()[event_type]) == []


def test_compatibility_check_catches_non_additive_changes() -> None:
    schema = current_schemas()[COURSE_COMPLETED.type]
    removed = copy.deepcopy(schema)
    data_def = next(k for k in removed["$defs"] if k.startswith("CourseCompleted"))
    del removed["$defs"][data_def]["properties"]["score"]
    assert any("score: field removed" in p for p in compatibility_problems(schema, removed))

    new_required = copy.deepcopy(schema)
    new_required["required"] = [*new_required["required"], "subject"]
    assert any("subject: new required field" in p for p in compatibility_problems(schema, new_required))

    retyped = copy.deepcopy(schema)
    retyped["properties"]["id"] = {"type": "integer"}
    assert any("id: accepted values narrowed" in p for p in compatibility_problems(schema, retyped))

    added = copy.deepcopy(schema)
    added["$defs"][data_def]["properties"]["attempt"] = {"type": "integer"}
    assert compatibility_problems(schema, added) == []


def test_snapshot_directory_is_the_committed_one() -> None:
    assert SNAPSHOT_DIR.name == "schemas" and SNAPSHOT_DIR.parent.name == "shared"


@pytest.mark.parametrize("path", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_golden_samples_keep_parsing(path: Path) -> None:
    sample = json.loads(path.read_text(encoding="utf-8"))
    spec, event = parse_event(json.dumps(sample["event"]).encode(), sample["subject"])
    assert spec.type == sample["event"]["type"]
    assert spec.subject(sample["event"]["data"]["institution"]) == sample["subject"]
    again = json.loads(event.to_json_bytes())
    for key, value in sample["event"].items():
        if key not in ("time", "data"):
            assert again[key] == value  # unknown extension attributes are kept


def test_round_trip_keeps_types_and_offsets() -> None:
    data = EducatorRegistered(
        educator_id="edu-1",
        institution="must",
        language="ru",
        role="educator",
        registered_at="2025-03-01T08:00:00+08:00",
    )
    event = make_event(
        data, event_type=EDUCATOR_REGISTERED.type, source="urn:iioe:service:registration", subject="edu-1"
    )
    spec, parsed = parse_event(event.to_json_bytes(), EDUCATOR_REGISTERED.subject("must"))
    assert spec is EDUCATOR_REGISTERED
    assert parsed.data == data and parsed.id == event.id
    assert parsed.data.registered_at.utcoffset().total_seconds() == 8 * 3600
    assert isinstance(parsed, CloudEvent)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("id"), Reason.MISSING_ATTRIBUTE),
        (lambda e: e.update(specversion="0.3"), Reason.UNSUPPORTED_SPECVERSION),
        (lambda e: e.update(type="org.iioe.learning.course_started.v1"), Reason.UNKNOWN_TYPE),
        (lambda e: e.update(time="yesterday"), Reason.INVALID_ATTRIBUTE),
        (lambda e: e.update(time=1743577445), Reason.INVALID_ATTRIBUTE),
        (lambda e: e.update(time="2025-04-02T15:04:05+0800"), Reason.INVALID_ATTRIBUTE),
        (lambda e: e.update(id="x" * 129), Reason.INVALID_ATTRIBUTE),
        (lambda e: e["data"].pop("course_id"), Reason.INVALID_DATA),
        (lambda e: e["data"].update(score="85"), Reason.INVALID_DATA),
        (lambda e: e["data"].update(score=-1), Reason.SCORE_OUT_OF_RANGE),
        (lambda e: e["data"].update(completed_at="2025-04-02T15:00:00"), Reason.INVALID_DATA),
        (lambda e: e["data"].update(completed_at=1743577200), Reason.INVALID_DATA),
        (lambda e: e["data"].update(completed_at="2025-04-02T15:00+08:00"), Reason.INVALID_DATA),
    ],
)
def test_invalid_events_are_rejected_with_a_specific_reason(mutate: Callable[[Any], object], reason: Reason) -> None:
    sample = json.loads((Path(__file__).parent / "golden" / "course_completed.json").read_text(encoding="utf-8"))
    event = sample["event"]
    mutate(event)
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(event).encode(), sample["subject"])
    assert caught.value.reason == reason


def test_oversized_event_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(b"{" + b" " * 70_000 + b"}")
    assert caught.value.reason == Reason.TOO_LARGE


def test_subject_rule() -> None:
    assert event_subject("must", "course_completed") == "iioe.events.must.course_completed.v1"
    assert event_subject("mnums", "certificate_issued", 2) == "iioe.events.mnums.certificate_issued.v2"
    assert contact_subject("num") == "iioe.contacts.num.educator_contact.v1"
    for bad in ("MUST", "m", "must.edu", "a" * 33, "must*", ""):
        with pytest.raises(InvalidSubjectPart):
            event_subject(bad, "course_completed")
    with pytest.raises(InvalidSubjectPart):
        event_subject("must", "Course-Completed")
    parts = parse_event_subject("iioe.events.gmit.course_completed.v1")
    assert parts is not None and (parts.institution, parts.name, parts.major) == ("gmit", "course_completed", 1)
    assert parse_event_subject("iioe.events.must.course_completed") is None


def test_every_type_is_derived_from_context_name_and_major() -> None:
    for event_type, spec in BY_TYPE.items():
        assert event_type == f"org.iioe.{spec.context}.{spec.type_name or spec.name}.v{spec.major}"
        parts = (parse_contact_subject if spec.contact else parse_event_subject)(spec.subject("must"))
        assert parts is not None and (parts.name, parts.major) == (spec.name, spec.major)
