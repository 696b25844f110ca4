"""Registration rules that need the catalogue and the clock, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iioe.commands import RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorRegistered
from services.registration.domain import CLOCK_SKEW, RegisterEducator, RegistrationError, new_educator

KNOWN = {"must", "num"}
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def command(institution: str = "must", **overrides: object) -> RegisterEducator:
    body = {"full_name": "Батын Сарнай", "email": "Sarnai@MUST.edu.mn", "language": "mn", **overrides}
    return RegisterEducator(institution, RegisterEducatorRequest.parse(body))


def test_registered_at_defaults_to_the_platform_clock() -> None:
    educator = new_educator(command(), KNOWN, now=NOW, educator_id="edu-1")
    assert educator.registered_at == NOW and educator.role == "educator"


def test_email_key_ignores_case() -> None:
    educator = new_educator(command(), KNOWN, now=NOW, educator_id="edu-1")
    assert educator.email == "Sarnai@must.edu.mn" and educator.email_key == "sarnai@must.edu.mn"


def test_unknown_institution_is_rejected() -> None:
    with pytest.raises(RegistrationError) as caught:
        new_educator(command("xyz"), KNOWN, now=NOW, educator_id="edu-1")
    assert caught.value.code == "unknown_institution" and "xyz" in caught.value.message


def test_registered_at_in_the_future_is_rejected_beyond_clock_skew() -> None:
    ahead = (NOW + CLOCK_SKEW + timedelta(seconds=1)).isoformat()
    with pytest.raises(RegistrationError) as caught:
        new_educator(command(registered_at=ahead), KNOWN, now=NOW, educator_id="edu-1")
    assert caught.value.code == "registered_at_in_future"
    within_skew = (NOW + CLOCK_SKEW).isoformat()
    assert new_educator(command(registered_at=within_skew), KNOWN, now=NOW, educator_id="edu-1").registered_at > NOW


def test_events_keep_personal_data_out_of_educator_registered() -> None:
    educator = new_educator(command(role="master_teacher"), KNOWN, now=NOW, educator_id="edu-1")
    registered, contact = educator.events()
    assert isinstance(registered, EducatorRegistered) and isinstance(contact, EducatorContact)
    assert registered.role == "master_teacher" and registered.registered_at == NOW
    assert "Сарнай" not in registered.model_dump_json() and "must.edu.mn" not in registered.model_dump_json()
    assert (contact.full_name, contact.email, contact.language) == ("Батын Сарнай", "Sarnai@must.edu.mn", "mn")
