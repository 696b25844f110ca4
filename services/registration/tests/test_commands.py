"""The register_educator body: each rule of the contract model, with its own error code."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from iioe.commands import CommandRejected, RegisterEducatorRequest


def body(**overrides: object) -> dict[str, object]:
    return {"full_name": "  Батын   Сарнай ", "email": "  Sarnai@MUST.edu.mn ", "language": "mn", **overrides}


def test_name_and_email_are_normalised() -> None:
    request = RegisterEducatorRequest.parse(body())
    assert request.full_name == "Батын Сарнай"
    assert request.email == "Sarnai@must.edu.mn"


def test_role_defaults_to_educator_and_registered_at_to_none() -> None:
    assert RegisterEducatorRequest.parse(body()).role == "educator"
    assert RegisterEducatorRequest.parse(body(role=None)).role == "educator"
    assert RegisterEducatorRequest.parse(body()).registered_at is None


def test_master_teacher_and_historical_date_with_offset_are_kept() -> None:
    request = RegisterEducatorRequest.parse(body(role="master_teacher", registered_at="2025-03-14T09:30:00+08:00"))
    assert request.role == "master_teacher"
    assert request.registered_at == datetime(2025, 3, 14, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    assert RegisterEducatorRequest.parse(body(registered_at="2025-03-14T01:30:00Z")).registered_at == datetime(
        2025, 3, 14, 1, 30, tzinfo=UTC
    )


def test_unknown_fields_are_ignored() -> None:
    assert RegisterEducatorRequest.parse(body(institution="must", nickname="S")).full_name == "Батын Сарнай"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (["not", "an", "object"], "invalid_request"),
        ("a string", "invalid_request"),
        (body(full_name="   "), "missing_full_name"),
        (body(full_name=None), "missing_full_name"),
        ({"email": "a@b.mn", "language": "mn"}, "missing_full_name"),
        (body(full_name="x" * 201), "invalid_full_name"),
        (body(email="sarnai@"), "invalid_email"),
        (body(email="two@@must.mn"), "invalid_email"),
        (body(email=None), "missing_email"),
        ({"full_name": "A B", "language": "mn"}, "missing_email"),
        (body(language="kk"), "unsupported_language"),
        (body(language=None), "unsupported_language"),
        ({"full_name": "A B", "email": "a@b.mn"}, "unsupported_language"),
        (body(role="rector"), "unknown_role"),
        (body(registered_at="2025-03-14T09:30:00"), "invalid_registered_at"),
        (body(registered_at="14/03/2025"), "invalid_registered_at"),
        (body(registered_at=20250314), "invalid_registered_at"),
    ],
)
def test_each_problem_has_its_own_code(payload: object, code: str) -> None:
    with pytest.raises(CommandRejected) as caught:
        RegisterEducatorRequest.parse(payload)
    assert caught.value.code == code
    assert caught.value.message


def test_the_first_problem_in_field_order_is_reported() -> None:
    with pytest.raises(CommandRejected) as caught:
        RegisterEducatorRequest.parse(body(email="nope", language="kk"))
    assert caught.value.code == "invalid_email"


def test_a_brace_in_the_input_does_not_break_the_message() -> None:
    with pytest.raises(CommandRejected) as caught:
        RegisterEducatorRequest.parse(body(email="{reason}@"))
    assert "'{reason}@'" in caught.value.message
