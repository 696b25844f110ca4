"""The subject rules of contract v1, built and parsed only by `iioe.subjects`."""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import pytest

from iioe.events.common import InstitutionCode
from iioe.subjects import (
    INSTITUTION_CODE_PATTERN,
    INSTITUTION_CODE_RE,
    REGISTER_EDUCATOR,
    CommandSubject,
    InvalidSubjectPart,
    command_address,
    command_filter,
    command_subject,
    contact_address,
    contact_filter,
    contact_subject,
    dlq_filter,
    event_address,
    event_filter,
    event_subject,
    parse_command_subject,
    parse_event_subject,
)


def test_filters_cover_every_institution() -> None:
    assert contact_filter() == "iioe.contacts.*.educator_contact.v1"
    assert command_filter(REGISTER_EDUCATOR) == "iioe.commands.*.register_educator"
    assert event_filter("course_completed") == "iioe.events.*.course_completed.v1"
    assert dlq_filter("cert-1") == "iioe.dlq.cert-1.>"


def test_asyncapi_addresses_name_the_institution_parameter() -> None:
    assert event_address("certificate_issued") == "iioe.events.{institution}.certificate_issued.v1"
    assert contact_address() == "iioe.contacts.{institution}.educator_contact.v1"
    assert command_address("change_role") == "iioe.commands.{institution}.change_role"


def test_a_command_subject_round_trips() -> None:
    subject = command_subject("must", REGISTER_EDUCATOR)
    assert subject == "iioe.commands.must.register_educator"
    assert parse_command_subject(subject) == CommandSubject("must", REGISTER_EDUCATOR)


@pytest.mark.parametrize(
    "subject",
    [
        "iioe.commands.MUST.register_educator",
        "iioe.commands.must",
        "iioe.commands.must.register_educator.extra",
        "iioe.events.must.register_educator",
        "iioe.commands.m.register_educator",
    ],
)
def test_a_subject_off_the_rule_parses_to_none(subject: str) -> None:
    assert parse_command_subject(subject) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: command_subject("Must", REGISTER_EDUCATOR),
        lambda: command_subject("must", "Register"),
        lambda: contact_subject("x"),
        lambda: event_subject("must", "course_completed", 0),
        lambda: dlq_filter("a.b"),
    ],
)
def test_builders_refuse_parts_outside_the_contract(build: Callable[[], str]) -> None:
    with pytest.raises(InvalidSubjectPart):
        build()


def test_the_institution_code_is_defined_once_and_the_event_models_use_it() -> None:
    assert INSTITUTION_CODE_RE.pattern == f"^{INSTITUTION_CODE_PATTERN}$"
    _, constraint = get_args(InstitutionCode)
    assert constraint.pattern == INSTITUTION_CODE_RE.pattern
    assert parse_event_subject("iioe.events.a-very-long-institution-code-of-32.course_completed.v1") is None
    parsed = parse_event_subject(f"iioe.events.{'x' * 32}.course_completed.v1")
    assert parsed is not None and parsed.institution == "x" * 32
