"""Registration rules, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.registration.domain import RegistrationError, validate_request

KNOWN = {"must": object(), "num": object()}
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def valid(**overrides: object) -> dict[str, object]:
    return {"full_name": "  Батын   Сарнай ", "email": "Sarnai@MUST.edu.mn", "language": "mn", **overrides}


def test_valid_request_is_normalised() -> None:
    reg = validate_request("must", valid(), KNOWN, NOW)
    assert reg.full_name == "Батын Сарнай"
    assert reg.email == "Sarnai@must.edu.mn" and reg.email_key == "sarnai@must.edu.mn"
    assert reg.role == "educator" and reg.registered_at == NOW


def test_historical_registered_at_is_kept_with_its_offset() -> None:
    reg = validate_request("must", valid(registered_at="2025-03-14T09:30:00+08:00"), KNOWN, NOW)
    assert reg.registered_at.isoformat() == "2025-03-14T09:30:00+08:00"


@pytest.mark.parametrize(
    ("institution", "payload", "code"),
    [
        ("xyz", valid(), "unknown_institution"),
        ("must", ["not", "an", "object"], "invalid_request"),
        ("must", valid(full_name="   "), "missing_full_name"),
        ("must", valid(full_name=None), "missing_full_name"),
        ("must", valid(email="sarnai@"), "invalid_email"),
        ("must", valid(email="two@@must.mn"), "invalid_email"),
        ("must", valid(email=None), "missing_email"),
        ("must", valid(language="kk"), "unsupported_language"),
        ("must", valid(language=None), "unsupported_language"),
        ("must", valid(role="rector"), "unknown_role"),
        ("must", valid(registered_at="2025-03-14T09:30:00"), "invalid_registered_at"),
        ("must", valid(registered_at="14/03/2025"), "invalid_registered_at"),
        ("must", valid(registered_at=20250314), "invalid_registered_at"),
        ("must", valid(registered_at="2025-06-02T00:00:00Z"), "registered_at_in_future"),
    ],
)
def test_each_problem_has_its_own_code(institution: str, payload: object, code: str) -> None:
    with pytest.raises(RegistrationError) as caught:
        validate_request(institution, payload, KNOWN, NOW)
    assert caught.value.code == code
    assert caught.value.message


def test_role_master_teacher_and_test_domains_are_accepted() -> None:
    reg = validate_request("num", valid(role="master_teacher", email="a@school.test"), KNOWN, NOW)
    assert reg.role == "master_teacher"
