"""Contract v1.1 section 9: the catalogue holds exactly the contract's types and fields, and nothing personal."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from iioe.events import (
    ALL_EVENTS,
    BY_TYPE,
    CREDIT_TRANSFER_DECIDED,
    EDUCATOR_CONTACT,
    PARTNER_EVENT_TYPES,
    PLATFORM_EVENT_TYPES,
    PORTFOLIO_ENTRY_ADDED,
    CreditTransferDecided,
    EventSpec,
)
from iioe.events.registration import EducatorRegistered
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason

GOLDEN_DIR = Path(__file__).parent / "golden"

# (type, subject name, required data fields, optional data fields) — copied from contract v1.1 section 9
SECTION_9 = [
    (
        "org.iioe.registration.educator_role_changed.v1",
        "educator_role_changed",
        {"educator_id", "institution", "role", "changed_at"},
        set(),
    ),
    (
        "org.iioe.cascade.training_session_held.v1",
        "training_session_held",
        {"session_id", "institution", "master_teacher_id", "region", "mode", "held_on", "language"},
        set(),
    ),
    ("org.iioe.cascade.trainee_attended.v1", "trainee_attended", {"session_id", "institution", "educator_id"}, set()),
    (
        "org.iioe.portfolio.entry_added.v1",
        "portfolio_entry_added",
        {"entry_id", "educator_id", "institution", "kind", "title", "added_on"},
        {"link"},
    ),
    (
        "org.iioe.portfolio.practice_integration_reported.v1",
        "practice_integration_reported",
        {"educator_id", "institution", "integrates_ai", "reported_on"},
        {"disciplines"},
    ),
    (
        "org.iioe.learning.course_evaluated.v1",
        "course_evaluated",
        {"educator_id", "institution", "course_id", "language", "content_rating", "usefulness_rating"},
        set(),
    ),
    (
        "org.iioe.recognition.credit_transfer_requested.v1",
        "credit_transfer_requested",
        {
            "request_id",
            "educator_id",
            "institution",
            "certificate_id",
            "receiving_institution",
            "receiving_programme",
            "requested_at",
        },
        set(),
    ),
    (
        "org.iioe.recognition.credit_transfer_decided.v1",
        "credit_transfer_decided",
        {"request_id", "educator_id", "institution", "receiving_institution", "decision", "decided_at"},
        {"credits", "reason"},
    ),
    (
        "org.iioe.certification.certificate_suspended.v1",
        "certificate_suspended",
        {"certificate_id", "educator_id", "institution", "at"},
        {"reason"},
    ),
    (
        "org.iioe.certification.certificate_reinstated.v1",
        "certificate_reinstated",
        {"certificate_id", "educator_id", "institution", "at"},
        {"reason"},
    ),
    ("org.iioe.registration.educator_erased.v1", "educator_erased", {"educator_id", "institution", "erased_at"}, set()),
]
V1_0_TYPES = {
    "org.iioe.registration.educator_registered.v1",
    "org.iioe.registration.educator_contact.v1",
    "org.iioe.learning.course_completed.v1",
    "org.iioe.certification.certificate_issued.v1",
    "org.iioe.certification.certificate_revoked.v1",
    "org.iioe.certification.credit_recognized.v1",  # the platform's own additive type, kept
}


def test_catalogue_is_exactly_v1_and_section_9() -> None:
    assert set(BY_TYPE) == V1_0_TYPES | {row[0] for row in SECTION_9}
    assert len(BY_TYPE) == len(ALL_EVENTS)


@pytest.mark.parametrize(("event_type", "name", "required", "optional"), SECTION_9, ids=[r[1] for r in SECTION_9])
def test_section_9_fields_and_subject(event_type: str, name: str, required: set[str], optional: set[str]) -> None:
    spec = BY_TYPE[event_type]
    assert spec.name == name and spec.major == 1 and not spec.contact
    assert spec.subject("must") == f"iioe.events.must.{name}.v1"
    schema = spec.model.model_json_schema()
    assert set(schema.get("required", [])) == required
    assert set(schema["properties"]) == required | optional


def test_partner_and_platform_types_split_the_catalogue() -> None:
    assert [spec.name for spec in PARTNER_EVENT_TYPES] == [
        "course_completed",
        "training_session_held",
        "trainee_attended",
        "portfolio_entry_added",
        "practice_integration_reported",
        "course_evaluated",
    ]
    assert set(PARTNER_EVENT_TYPES) | set(PLATFORM_EVENT_TYPES) == set(ALL_EVENTS)
    assert not set(PARTNER_EVENT_TYPES) & set(PLATFORM_EVENT_TYPES)
    assert EDUCATOR_CONTACT in PLATFORM_EVENT_TYPES


def test_subject_filters_for_access_control() -> None:
    assert PORTFOLIO_ENTRY_ADDED.subject_filter() == "iioe.events.*.portfolio_entry_added.v1"
    assert PORTFOLIO_ENTRY_ADDED.subject_filter("must") == "iioe.events.must.portfolio_entry_added.v1"
    assert EDUCATOR_CONTACT.subject_filter() == "iioe.contacts.*.educator_contact.v1"


def test_type_is_derived_not_stored() -> None:
    assert PORTFOLIO_ENTRY_ADDED.type == "org.iioe.portfolio.entry_added.v1"
    spec = EventSpec("learning", "course_completed", 2, EducatorRegistered)
    assert spec.type == "org.iioe.learning.course_completed.v2"
    for bad in (("Learning", "x", 1), ("learning", "course-completed", 1), ("learning", "x", 0)):
        with pytest.raises(ValueError):
            EventSpec(bad[0], bad[1], bad[2], EducatorRegistered)
    with pytest.raises(ValueError):
        EventSpec("registration", "educator_contact", 1, EducatorRegistered, contact=True, partner=True)


PERSONAL = ("name", "email", "e_mail", "phone", "comment", "address", "birth")


def test_no_event_on_the_log_carries_personal_data_fields() -> None:
    for spec in ALL_EVENTS:
        if spec.contact:
            continue
        for field in spec.model.model_fields:
            assert not any(word in field for word in PERSONAL), f"{spec.type}.{field}"


def test_every_type_has_a_golden_sample() -> None:
    sampled = {json.loads(p.read_text(encoding="utf-8"))["event"]["type"] for p in GOLDEN_DIR.glob("*.json")}
    assert sampled == set(BY_TYPE)


def _golden(name: str) -> tuple[dict[str, Any], str]:
    sample = json.loads((GOLDEN_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return sample["event"], sample["subject"]


def _reason(event: dict[str, Any], subject: str | None) -> Reason:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(event).encode(), subject)
    return caught.value.reason


@pytest.mark.parametrize(
    ("sample", "field", "value"),
    [
        ("course_evaluated", "content_rating", 0),
        ("course_evaluated", "content_rating", 6),
        ("course_evaluated", "usefulness_rating", 4.5),
        ("course_evaluated", "usefulness_rating", "4"),
        ("course_evaluated", "content_rating", True),
        ("course_evaluated", "language", "de"),
        ("training_session_held", "mode", "classroom"),
        ("training_session_held", "held_on", "2025-05-20T00:00:00"),
        ("training_session_held", "held_on", "20.05.2025"),
        ("training_session_held", "held_on", 1747699200),
        ("training_session_held", "region", ""),
        ("portfolio_entry_added", "kind", "essay"),
        ("portfolio_entry_added", "link", "ftp://example.org/x"),
        ("portfolio_entry_added", "title", "x" * 201),
        ("practice_integration_reported", "integrates_ai", "yes"),
        ("practice_integration_reported", "integrates_ai", 1),
        ("practice_integration_reported", "disciplines", "physics"),
        ("credit_transfer_decided", "decision", "maybe"),
        ("credit_transfer_decided", "credits", -1),
        ("credit_transfer_decided", "credits", "3"),
        ("credit_transfer_decided", "credits", True),
        ("credit_transfer_decided", "decided_at", "2025-09-01T10:00:00"),
        ("credit_transfer_decided", "decided_at", 1756692000),
        ("credit_transfer_decided", "decided_at", "2025-09-01"),
        ("credit_transfer_requested", "receiving_institution", "NUM"),
        ("certificate_suspended", "at", "yesterday"),
        ("educator_role_changed", "role", "admin"),
        ("educator_erased", "institution", "Must"),
    ],
)
def test_section_9_data_is_validated(sample: str, field: str, value: object) -> None:
    event, subject = _golden(sample)
    event["data"][field] = value
    assert _reason(event, subject) == Reason.INVALID_DATA


@pytest.mark.parametrize("sample", [row[1] for row in SECTION_9])
def test_a_missing_required_field_is_invalid_data(sample: str) -> None:
    event, subject = _golden(sample)
    spec = BY_TYPE[event["type"]]
    for field in spec.model.model_json_schema()["required"]:
        broken = json.loads(json.dumps(event))
        del broken["data"][field]
        assert _reason(broken, subject) == Reason.INVALID_DATA, field


def test_times_keep_their_offset_and_dates_are_dates() -> None:
    event, subject = _golden("training_session_held")
    _, parsed = parse_event(json.dumps(event).encode(), subject)
    assert parsed.data.held_on.isoformat() == "2025-05-20"
    event, subject = _golden("certificate_suspended")
    _, parsed = parse_event(json.dumps(event).encode(), subject)
    assert parsed.data.at.utcoffset().total_seconds() == 8 * 3600


def test_credits_count_only_when_a_transfer_is_accepted() -> None:
    event, subject = _golden("credit_transfer_decided")
    _, accepted = parse_event(json.dumps(event).encode(), subject)
    assert accepted.data.granted_credits == 3
    # contract v1.1 marks credits optional for either decision: both stay accepted on the wire
    event["data"].pop("credits")
    _, without = parse_event(json.dumps(event).encode(), subject)
    assert without.data.credits is None and without.data.granted_credits is None
    rejected = CreditTransferDecided.model_validate(
        {**event["data"], "decision": "rejected", "credits": 5, "reason": "programme_full"}
    )
    assert rejected.credits == 5 and rejected.granted_credits is None
    assert CREDIT_TRANSFER_DECIDED.model is CreditTransferDecided


def test_trainee_of_another_institution_is_published_on_the_trainees_subject() -> None:
    event, subject = _golden("trainee_attended")
    assert subject == "iioe.events.num.trainee_attended.v1"
    _, parsed = parse_event(json.dumps(event).encode(), subject)
    assert parsed.data.institution == "num"
    assert _reason(event, "iioe.events.must.trainee_attended.v1") == Reason.SUBJECT_INSTITUTION_MISMATCH


GOLDEN_NAMES = sorted(p.stem for p in GOLDEN_DIR.glob("*.json"))


@pytest.mark.parametrize("sample", GOLDEN_NAMES)
def test_subject_institution_must_be_the_data_institution_for_every_type(sample: str) -> None:
    event, subject = _golden(sample)
    parts = subject.split(".")
    other = "gmit" if parts[2] != "gmit" else "must"
    wrong = ".".join([*parts[:2], other, *parts[3:]])
    assert _reason(event, wrong) == Reason.SUBJECT_INSTITUTION_MISMATCH


@pytest.mark.parametrize("sample", GOLDEN_NAMES)
def test_subject_must_follow_the_types_rule(sample: str) -> None:
    event, subject = _golden(sample)
    root, stream, inst, name, major = subject.split(".")
    other_stream = "events" if stream == "contacts" else "contacts"
    assert _reason(event, f"{root}.{stream}.{inst}.other_name.{major}") == Reason.SUBJECT_MISMATCH
    assert _reason(event, f"{root}.{stream}.{inst}.{name}.v2") == Reason.SUBJECT_MISMATCH
    assert _reason(event, f"{root}.{other_stream}.{inst}.{name}.{major}") == Reason.SUBJECT_MISMATCH
    assert _reason(event, "not a subject") == Reason.SUBJECT_MISMATCH


def test_contact_on_the_event_log_is_a_subject_mismatch() -> None:
    event, _ = _golden("educator_contact")
    assert _reason(event, "iioe.events.must.educator_contact.v1") == Reason.SUBJECT_MISMATCH
    assert _reason(event, "iioe.contacts.num.educator_contact.v1") == Reason.SUBJECT_INSTITUTION_MISMATCH


@pytest.mark.parametrize("spec", ALL_EVENTS, ids=[spec.name for spec in ALL_EVENTS])
def test_every_model_carries_the_event_comment_block(spec: EventSpec) -> None:
    comments = inspect.getcomments(spec.model) or ""
    lines = [line.removeprefix("# .. ").strip() for line in comments.splitlines()]
    keys = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines if ":" in line}
    assert keys.keys() >= {"event_type", "subject", "producer", "consumers", "personal_data"}, spec.type
    assert keys["event_type"].split()[0] == spec.type
    assert keys["subject"].split()[0] == spec.subject("inst").replace(".inst.", ".<institution>.")
