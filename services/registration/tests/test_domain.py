"""Registration rules that need the catalogue and the clock, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from iioe.commands import RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorErased, EducatorRegistered, EducatorRoleChanged
from services.registration.domain import (
    CLOCK_SKEW,
    Educator,
    RegisterEducator,
    RegistrationError,
    change_role,
    educator_in_scope,
    erase,
    new_educator,
)

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


def registered(role: str = "educator") -> Educator:
    return new_educator(command(role=role), KNOWN, now=NOW, educator_id="edu-1")


def test_change_role_returns_the_event_only_when_the_role_changes() -> None:
    educator = registered()
    changed, event = change_role(educator, "master_teacher", now=NOW)
    assert changed.role == "master_teacher" and educator.role == "educator"  # the original is not mutated
    assert isinstance(event, EducatorRoleChanged) and event.changed_at == NOW
    same, none = change_role(changed, "master_teacher", now=NOW)
    assert same is changed and none is None


def test_erase_keeps_identity_and_drops_personal_data_once() -> None:
    erased, event = erase(registered("master_teacher"), now=NOW)
    assert (erased.full_name, erased.email, erased.email_key, erased.erased_at) == (None, None, None, NOW)
    assert (erased.educator_id, erased.institution, erased.role) == ("edu-1", "must", "master_teacher")
    assert isinstance(event, EducatorErased)
    assert erase(erased, now=NOW) == (erased, None)
    with pytest.raises(RegistrationError) as caught:
        change_role(erased, "educator", now=NOW)
    assert caught.value.code == "educator_erased"


@pytest.mark.parametrize(("scope", "visible"), [(None, True), ("must", True), ("num", False)])
def test_an_educator_is_in_scope_of_its_institution_and_of_operators(scope: str | None, visible: bool) -> None:
    educator = registered()
    if visible:
        assert educator_in_scope(educator, "edu-1", scope) is educator
    else:
        with pytest.raises(RegistrationError) as caught:
            educator_in_scope(educator, "edu-1", scope)
        assert caught.value.code == "educator_not_found"
