"""VC-JWT credentials: round trip, independent verification, tampering, key rotation, data minimisation."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt as pyjwt
import pytest

from services.certification.catalogue import Programme
from services.certification.credentials import (
    CREDENTIAL_CONTEXT,
    CredentialError,
    CredentialErrorReason,
    IssuerProfile,
    KeyRecord,
    KeyRing,
    build_credential_claims,
    generate_signing_key,
    key_from_private_jwk,
    key_to_private_jwk,
    sign_credential,
    verify_credential,
)
from services.certification.domain import certificate_id_for
from services.certification.reference import builtin_catalogue

EDUCATOR = "edu-7f3a"
ISSUED_AT = datetime(2025, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)  # in the past: PyJWT checks nbf
EMAIL = re.compile(r"[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+")


@pytest.fixture(scope="module")
def programme() -> Programme:
    return builtin_catalogue().programme("ai-in-higher-education")


@pytest.fixture(scope="module")
def ring() -> KeyRing:
    return KeyRing.generate(now=ISSUED_AT)


@pytest.fixture(scope="module")
def claims(programme: Programme) -> dict[str, Any]:
    return build_credential_claims(
        certificate_id=certificate_id_for(EDUCATOR, programme.id),
        educator_id=EDUCATOR,
        programme=programme,
        issued_at=ISSUED_AT,
    )


@pytest.fixture(scope="module")
def token(claims: dict[str, Any], ring: KeyRing) -> str:
    return sign_credential(claims, ring)


def reason_of(token: str, jwks: dict[str, Any], **kwargs: Any) -> CredentialErrorReason:
    with pytest.raises(CredentialError) as caught:
        verify_credential(token, jwks, **kwargs)
    return caught.value.reason


def b64json(value: Any) -> str:
    return pyjwt.utils.base64url_encode(json.dumps(value).encode()).decode()


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


# --- the credential --------------------------------------------------------------------------------


def test_claims_are_an_open_badges_3_credential(claims: dict[str, Any], programme: Programme) -> None:
    certificate_id = certificate_id_for(EDUCATOR, programme.id)
    vc = claims["vc"]
    assert claims["iss"] == vc["issuer"]["id"]
    assert claims["sub"] == f"urn:iioe:educator:{EDUCATOR}" == vc["credentialSubject"]["id"]
    assert claims["jti"] == f"urn:iioe:certificate:{certificate_id}" == vc["id"]
    assert claims["iat"] == claims["nbf"] == int(ISSUED_AT.replace(microsecond=0).timestamp())
    assert vc["@context"] == list(CREDENTIAL_CONTEXT)
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert vc["issuer"]["type"] == ["Profile"]
    assert vc["validFrom"] == "2025-03-02T09:30:15Z"
    subject = vc["credentialSubject"]
    assert subject["type"] == ["AchievementSubject"]
    achievement = subject["achievement"]
    assert achievement["type"] == ["Achievement"]
    assert achievement["achievementType"] == "MicroCredential"
    assert achievement["name"] == vc["name"] == "AI in Higher Education"
    assert achievement["creditsAvailable"] == subject["creditsEarned"] == programme.credits
    assert achievement["courseIds"] == ["genai-fundamentals", "teaching-with-ai", "future-classroom"]
    assert achievement["programmeId"] == programme.id
    assert "80" in achievement["criteria"]["narrative"]
    [alignment] = achievement["alignment"]
    assert alignment["targetFramework"] == programme.framework
    assert alignment["targetCode"] == programme.framework_level
    assert vc["certificateId"] == certificate_id
    json.dumps(claims)  # plain JSON, nothing that needs a custom encoder


def test_names_are_language_tagged_in_mongolian_english_and_russian(
    claims: dict[str, Any], programme: Programme
) -> None:
    achievement = claims["vc"]["credentialSubject"]["achievement"]
    names = {v["@language"]: v["@value"] for v in achievement["nameLocalized"]}
    assert names == {"mn": programme.names.mn, "en": programme.names.en, "ru": programme.names.ru}
    assert names["mn"] == "Дээд боловсрол дахь хиймэл оюун ухаан"
    assert names["ru"] == "Искусственный интеллект в высшем образовании"
    descriptions = {v["@language"] for v in achievement["descriptionLocalized"]}
    assert descriptions == {"mn", "en", "ru"}


def test_the_primary_language_can_be_mongolian(programme: Programme) -> None:
    claims = build_credential_claims(
        certificate_id="c-1", educator_id=EDUCATOR, programme=programme, issued_at=ISSUED_AT, language="mn"
    )
    achievement = claims["vc"]["credentialSubject"]["achievement"]
    assert achievement["name"] == programme.names.mn and achievement["inLanguage"] == "mn"
    assert "оноо" in achievement["criteria"]["narrative"]


def test_no_email_and_no_educator_name_anywhere(claims: dict[str, Any], token: str) -> None:
    parameters = set(inspect.signature(build_credential_claims).parameters)
    assert not {p for p in parameters if "mail" in p or "name" in p}
    assert set(claims["vc"]["credentialSubject"]) == {"id", "type", "creditsEarned", "achievement"}
    forbidden = {"email", "mail", "givenName", "familyName", "fullName", "additionalName", "identifier"}
    assert not forbidden & {key for key, _ in walk(claims)}
    assert not EMAIL.search(json.dumps(claims, ensure_ascii=False))
    payload = pyjwt.decode(token, options={"verify_signature": False})
    assert not EMAIL.search(json.dumps(payload, ensure_ascii=False))


def test_an_email_shaped_educator_id_is_refused(programme: Programme) -> None:
    with pytest.raises(ValueError, match="e-mail"):
        build_credential_claims(
            certificate_id="c-1", educator_id="bat@example.mn", programme=programme, issued_at=ISSUED_AT
        )


def test_a_naive_issue_time_is_refused(programme: Programme) -> None:
    with pytest.raises(ValueError, match="timezone"):
        build_credential_claims(
            certificate_id="c-1", educator_id=EDUCATOR, programme=programme, issued_at=datetime(2026, 1, 1)
        )


# --- signing and verification ----------------------------------------------------------------------


def test_sign_and_verify_round_trip(token: str, ring: KeyRing, claims: dict[str, Any], programme: Programme) -> None:
    verified = verify_credential(token, ring.jwks(), issuer=claims["iss"])
    assert verified.claims == claims
    assert verified.header == {"alg": "EdDSA", "kid": ring.active_kid, "typ": "JWT"}
    assert verified.kid == ring.active_kid
    assert verified.certificate_id == certificate_id_for(EDUCATOR, programme.id)
    assert verified.educator_id == EDUCATOR
    assert verified.programme_id == programme.id
    assert verified.course_ids == programme.course_ids
    assert verified.issued_at == ISSUED_AT.replace(microsecond=0)
    assert verified.credential == claims["vc"]


def test_an_independent_library_verifies_the_token(token: str, ring: KeyRing, claims: dict[str, Any]) -> None:
    [public_jwk] = ring.jwks()["keys"]
    header = pyjwt.get_unverified_header(token)
    assert header["kid"] == public_jwk["kid"] and header["alg"] == "EdDSA"
    decoded = pyjwt.decode(token, key=pyjwt.PyJWK(public_jwk).key, algorithms=["EdDSA"], options={"verify_aud": False})
    assert decoded == claims


def test_changing_any_single_character_breaks_verification(token: str, ring: KeyRing) -> None:
    jwks = ring.jwks()
    for i, char in enumerate(token):
        if char == ".":
            continue
        tampered = token[:i] + ("B" if char == "A" else "A") + token[i + 1 :]
        with pytest.raises(CredentialError):
            verify_credential(tampered, jwks)


def test_a_changed_payload_is_a_bad_signature(token: str, ring: KeyRing, claims: dict[str, Any]) -> None:
    header, _, signature = token.split(".")
    forged = dict(claims, sub="urn:iioe:educator:someone-else")
    assert reason_of(f"{header}.{b64json(forged)}.{signature}", ring.jwks()) == CredentialErrorReason.BAD_SIGNATURE


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b", "a.b.c", "a.b.c.d.e", "Zm9v.YmFy.YmF6"])
def test_garbage_is_malformed(garbage: str, ring: KeyRing) -> None:
    assert reason_of(garbage, ring.jwks()) == CredentialErrorReason.MALFORMED


def test_a_key_not_in_the_jwks_is_an_unknown_kid(token: str) -> None:
    other = KeyRing.generate()
    assert reason_of(token, other.jwks()) == CredentialErrorReason.UNKNOWN_KID
    assert reason_of(token, {"keys": []}) == CredentialErrorReason.UNKNOWN_KID


def test_other_algorithms_are_refused(claims: dict[str, Any], ring: KeyRing) -> None:
    """Alg confusion: an HMAC token keyed with the public key, or an unsigned one, must never pass."""
    [public_jwk] = ring.jwks()["keys"]
    headers = {"kid": ring.active_kid}
    hmac = pyjwt.encode(claims, public_jwk["x"].encode(), algorithm="HS256", headers=headers)
    unsigned = f"{b64json({'alg': 'none', **headers})}.{b64json(claims)}."
    assert reason_of(hmac, ring.jwks()) == CredentialErrorReason.UNSUPPORTED_ALG
    assert reason_of(unsigned, ring.jwks()) == CredentialErrorReason.UNSUPPORTED_ALG


def test_inconsistent_or_unexpected_claims_are_invalid(claims: dict[str, Any], ring: KeyRing) -> None:
    jwks = ring.jwks()
    swapped = {**claims, "vc": {**claims["vc"], "id": "urn:iioe:certificate:another"}}
    assert reason_of(sign_credential(swapped, ring), jwks) == CredentialErrorReason.INVALID_CLAIMS
    no_vc = {k: v for k, v in claims.items() if k != "vc"}
    assert reason_of(sign_credential(no_vc, ring), jwks) == CredentialErrorReason.INVALID_CLAIMS
    token = sign_credential(claims, ring)
    assert reason_of(token, jwks, issuer="https://elsewhere.example") == CredentialErrorReason.INVALID_CLAIMS
    early = ISSUED_AT - timedelta(days=1)
    assert reason_of(token, jwks, now=early) == CredentialErrorReason.INVALID_CLAIMS
    expired = {**claims, "exp": claims["iat"] + 10}
    assert reason_of(sign_credential(expired, ring), jwks) == CredentialErrorReason.INVALID_CLAIMS


def test_a_configured_issuer_url_is_used(programme: Programme, ring: KeyRing) -> None:
    issuer = IssuerProfile(id="https://certs.iioe.example/issuer", name="IIOE", url="https://iioe.example")
    claims = build_credential_claims(
        certificate_id="c-9", educator_id=EDUCATOR, programme=programme, issued_at=ISSUED_AT, issuer=issuer
    )
    verified = verify_credential(sign_credential(claims, ring), ring.jwks(), issuer=issuer.id)
    assert verified.issuer_id == issuer.id
    assert verified.credential["issuer"] == {"id": issuer.id, "type": ["Profile"], "name": "IIOE", "url": issuer.url}


# --- keys ------------------------------------------------------------------------------------------


def test_jwks_lists_public_ed25519_keys_only(ring: KeyRing) -> None:
    [key] = ring.jwks()["keys"]
    assert key == {"kty": "OKP", "crv": "Ed25519", "x": key["x"], "kid": ring.active_kid, "alg": "EdDSA", "use": "sig"}
    assert all("d" not in k for k in ring.rotate().jwks()["keys"])


def test_rotation_keeps_old_certificates_verifiable(token: str, ring: KeyRing, claims: dict[str, Any]) -> None:
    rotated = ring.rotate(now=ISSUED_AT + timedelta(days=90))
    assert rotated.active_kid != ring.active_kid
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [rotated.active_kid, ring.active_kid]
    assert verify_credential(token, rotated.jwks()).kid == ring.active_kid

    new_token = sign_credential(claims, rotated)
    assert verify_credential(new_token, rotated.jwks()).kid == rotated.active_kid
    assert reason_of(new_token, ring.jwks()) == CredentialErrorReason.UNKNOWN_KID
    assert ring.active_kid == ring.kids[0]  # rotate() returned a new ring; the old one is unchanged


def test_a_key_ring_survives_a_round_trip_through_storage(ring: KeyRing, token: str) -> None:
    rotated = ring.rotate()
    stored = [(r.kid, json.dumps(r.private_jwk), r.created_at, r.active) for r in rotated.records()]
    restored = KeyRing.from_records(KeyRecord(kid, json.loads(jwk), at, active) for kid, jwk, at, active in stored)
    assert restored.active_kid == rotated.active_kid
    assert restored.jwks() == rotated.jwks()
    assert verify_credential(token, restored.jwks()).kid == ring.active_kid


def test_a_key_ring_needs_exactly_one_active_key(ring: KeyRing) -> None:
    [record] = ring.records()
    with pytest.raises(ValueError, match="exactly one active"):
        KeyRing([KeyRecord(record.kid, record.private_jwk, record.created_at, active=False)])
    with pytest.raises(ValueError, match="exactly one active"):
        KeyRing([*ring.rotate().records(), record])


def test_private_jwk_round_trip_and_validation() -> None:
    key = generate_signing_key(now=ISSUED_AT)
    assert key.kid and key.kid.startswith("20250302-")
    jwk = key_to_private_jwk(key)
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["d"]
    restored = key_from_private_jwk(jwk)
    assert restored.kid == key.kid and key_to_private_jwk(restored)["d"] == jwk["d"]
    public_only = {k: v for k, v in jwk.items() if k != "d"}
    with pytest.raises(ValueError, match="'d'"):
        key_from_private_jwk(public_only)
    with pytest.raises(ValueError):
        key_from_private_jwk({**jwk, "crv": "X25519"})
