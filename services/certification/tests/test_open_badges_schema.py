"""Every credential the service issues (each programme, each language) against an Open Badges 3.0
AchievementCredential JSON schema, and the status list credential against the Bitstring Status List shape.

The schema is a hand-written subset of the 1EdTech one (see its description): the official
`ob_v3p0_achievementcredential_schema.json` is not vendored yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft201909Validator

from iioe.events import CertificateIssued, CourseCompleted, EducatorRegistered
from services.certification.credentials import verify_signature
from services.certification.tests.test_certificate_status import CATALOGUE, T0, World
from services.certification.usecases import MessageOrigin

SCHEMA = json.loads(
    Path(__file__).with_name("schemas").joinpath("ob_v3p0_achievementcredential.subset.json").read_text()
)
VALIDATOR = Draft201909Validator(SCHEMA)


def errors(document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


async def issue_everything(world: World, educator: str, language: str) -> list[CertificateIssued]:
    await world.service.on_educator_registered(
        f"reg-{educator}",
        EducatorRegistered(
            educator_id=educator, institution="must", language=language, role="educator", registered_at=T0
        ),
    )
    origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
    for programme in CATALOGUE.in_prerequisite_order():
        for course in programme.course_ids:
            data = CourseCompleted(
                educator_id=educator, institution="must", course_id=course, score=100, completed_at=T0
            )
            await world.service.on_course_completed(f"{educator}-{programme.id}-{course}", data, origin)
    return [
        e
        for e in world.uow.events_of(CertificateIssued)
        if isinstance(e, CertificateIssued) and e.educator_id == educator
    ]


@pytest.mark.parametrize("language", ["mn", "en", "ru"])
async def test_every_issued_credential_is_a_valid_open_badges_3_achievement_credential(language: str) -> None:
    world = World()
    issued = await issue_everything(world, f"edu-{language}", language)
    assert {e.programme_id for e in issued} == {p.id for p in CATALOGUE.programmes}
    jwks = (await world.service.keyring()).jwks()
    for event in issued:
        vc = verify_signature(event.credential, jwks)[2]["vc"]
        assert errors(vc) == [], event.programme_id
        assert vc["credentialSubject"]["achievement"]["inLanguage"] == language


def test_the_subset_schema_rejects_what_open_badges_forbids() -> None:
    """The schema is only worth something if it fails: a few mutations each produce an error."""
    base: dict[str, Any] = {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": "urn:iioe:certificate:c",
        "type": ["VerifiableCredential", "OpenBadgeCredential"],
        "name": "n",
        "issuer": {"id": "urn:iioe:issuer:x", "type": ["Profile"], "name": "x"},
        "validFrom": "2025-04-01T10:00:00Z",
        "credentialSubject": {
            "id": "urn:iioe:educator:e",
            "type": ["AchievementSubject"],
            "achievement": {
                "id": "urn:iioe:programme:p",
                "type": ["Achievement"],
                "name": "p",
                "description": "d",
                "criteria": {"narrative": "pass"},
            },
        },
    }
    assert errors(base) == []
    subject_with_email = {**base, "credentialSubject": {**base["credentialSubject"], "email": "a@b.org"}}
    assert errors(subject_with_email), "no e-mail (or any unknown property) on the subject"
    assert errors({**base, "type": ["VerifiableCredential"]})
    assert errors({**base, "validFrom": "2025-04-01"})
    assert errors({k: v for k, v in base.items() if k != "issuer"})
    bad_status = {**base, "credentialStatus": [{"type": "BitstringStatusListEntry", "statusPurpose": "revocation"}]}
    assert errors(bad_status)


async def test_the_status_list_credential_has_the_bitstring_status_list_shape() -> None:
    world = World()
    await issue_everything(world, "edu-1", "en")
    signed = await world.service.signed_status_list("revocation-1")
    vc = verify_signature(signed.token, (await world.service.keyring()).jwks())[2]["vc"]
    assert vc["@context"][0] == "https://www.w3.org/ns/credentials/v2"
    assert vc["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    subject = vc["credentialSubject"]
    assert subject["type"] == "BitstringStatusList" and subject["statusPurpose"] == "revocation"
    assert subject["encodedList"].startswith("u") and vc["validFrom"].endswith("Z")
