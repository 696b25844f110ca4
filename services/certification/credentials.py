"""Open Badges 3.0 `OpenBadgeCredential`s as VC-JWTs signed with Ed25519 (JWS alg "EdDSA").

A certificate must stay verifiable by a receiving university years later, offline, with any JOSE
library, so: the credential is a self-contained compact JWS, keys are identified by `kid`, retired
keys stay in the published JWKS, and the credential names the educator by an opaque id only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote, unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm, JWSAlgModel
from joserfc.jwk import OKPKey

from iioe.events.common import Language
from services.certification.domain import LocalizedText, Programme

__all__ = [
    "ALGORITHM",
    "CREDENTIAL_CONTEXT",
    "DEFAULT_ISSUER",
    "CredentialError",
    "CredentialErrorReason",
    "IssuerProfile",
    "KeyRecord",
    "KeyRing",
    "VerifiedCredential",
    "build_credential_claims",
    "certificate_urn",
    "educator_urn",
    "generate_signing_key",
    "key_from_private_jwk",
    "key_to_private_jwk",
    "programme_urn",
    "public_jwk",
    "sign_credential",
    "verify_credential",
]

ALGORITHM = "EdDSA"
CURVE: Final = "Ed25519"
CREDENTIAL_CONTEXT = (
    "https://www.w3.org/ns/credentials/v2",
    "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
)
CREDENTIAL_TYPE = ("VerifiableCredential", "OpenBadgeCredential")
OB_SCHEMA = "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
EDUCATOR_URN = "urn:iioe:educator:"
CERTIFICATE_URN = "urn:iioe:certificate:"
PROGRAMME_URN = "urn:iioe:programme:"
DEFAULT_LEEWAY = timedelta(seconds=60)
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class _EdDSA(EdDSAAlgorithm):
    """joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" name in favour of "Ed25519".

    We keep "EdDSA" because widely deployed JOSE libraries (PyJWT 2.x among them) know only that name;
    the ambiguity the RFC addresses (Ed25519 or Ed448?) is closed here by accepting Ed25519 keys only.
    """

    security_warning = ""  # falsy: joserfc then stays silent


class _Registry(jws.JWSRegistry):
    """Only EdDSA, so a token can never pick a weaker or symmetric algorithm (alg confusion)."""

    # Own tables instead of joserfc's shared class-level ones, which other code may register into.
    # (joserfc declares these without ClassVar, so annotating them as ClassVar here would not type-check.)
    algorithms: dict[str, JWSAlgModel] = {ALGORITHM: _EdDSA()}  # noqa: RUF012
    recommended: list[str] = []  # noqa: RUF012


_REGISTRY = _Registry(algorithms=[ALGORITHM])


# --- keys ---------------------------------------------------------------------------------------


def generate_signing_key(now: datetime | None = None) -> OKPKey:
    """A new Ed25519 key whose kid (creation date + RFC 7638 thumbprint prefix) is unique and sortable."""
    created = now or datetime.now(UTC)
    key = OKPKey.generate_key(CURVE, parameters={"alg": ALGORITHM, "use": "sig"})
    kid = f"{created.astimezone(UTC):%Y%m%d}-{key.thumbprint()[:16]}"
    return OKPKey.import_key({**key.as_dict(private=True), "kid": kid})


def key_to_private_jwk(key: OKPKey) -> dict[str, Any]:
    """The private JWK to persist (secret: the store must keep it out of logs and events)."""
    if not key.is_private or not key.kid:
        raise ValueError("a signing key must be a private Ed25519 key with a kid")
    return dict(key.as_dict(private=True))


def key_from_private_jwk(jwk: Mapping[str, Any]) -> OKPKey:
    """Rebuild a signing key from its stored JWK, rejecting anything but a private Ed25519 key with a kid."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != CURVE or not jwk.get("d") or not jwk.get("kid"):
        raise ValueError("a signing key JWK needs kty 'OKP', crv 'Ed25519', 'd' and 'kid'")
    try:
        return OKPKey.import_key({**jwk, "alg": ALGORITHM, "use": "sig"})
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"invalid signing key JWK {jwk.get('kid')!r}: {exc}") from None


def public_jwk(key: OKPKey) -> dict[str, Any]:
    """The publishable half of a key, built field by field so the private `d` can never leak."""
    public = key.as_dict(private=False)
    return {"kty": "OKP", "crv": public["crv"], "x": public["x"], "kid": key.kid, "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True)
class KeyRecord:
    """One stored key, as the store keeps it: (kid, private JWK, created_at, active)."""

    kid: str
    private_jwk: Mapping[str, Any] = field(repr=False)
    created_at: datetime
    active: bool


class KeyRing:
    """The active signing key plus retired keys, which stay published so old certificates keep verifying.

    Immutable: `rotate()` returns a new ring, and the store persists `records()`.
    """

    def __init__(self, records: Iterable[KeyRecord]) -> None:
        self._records = tuple(sorted(records, key=lambda r: (not r.active, -r.created_at.timestamp(), r.kid)))
        active = [r for r in self._records if r.active]
        if len(active) != 1:
            raise ValueError(f"a key ring needs exactly one active key, got {len(active)}")
        kids = [r.kid for r in self._records]
        if len(set(kids)) != len(kids):
            raise ValueError("duplicate kid in key ring")
        self._keys = {r.kid: _key_of(r) for r in self._records}
        self._active = active[0]

    @classmethod
    def from_records(cls, records: Iterable[KeyRecord]) -> KeyRing:
        return cls(records)

    @classmethod
    def generate(cls, now: datetime | None = None) -> KeyRing:
        """A ring with one fresh key, for first start-up."""
        return cls([_record(generate_signing_key(now), now, active=True)])

    @property
    def active_kid(self) -> str:
        return self._active.kid

    @property
    def active_key(self) -> OKPKey:
        return self._keys[self._active.kid]

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(r.kid for r in self._records)

    def records(self) -> tuple[KeyRecord, ...]:
        """Active key first, then retired keys newest first."""
        return self._records

    def rotate(self, now: datetime | None = None, new_key: OKPKey | None = None) -> KeyRing:
        """A ring signing with a new key; the previous active key is retired but still published."""
        key = new_key or generate_signing_key(now)
        retired = [replace(r, active=False) for r in self._records]
        return KeyRing([_record(key, now, active=True), *retired])

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """Public JWK Set of every key, retired ones included."""
        return {"keys": [public_jwk(self._keys[r.kid]) for r in self._records]}


def _record(key: OKPKey, now: datetime | None, *, active: bool) -> KeyRecord:
    jwk = key_to_private_jwk(key)
    return KeyRecord(kid=str(jwk["kid"]), private_jwk=jwk, created_at=now or datetime.now(UTC), active=active)


def _key_of(record: KeyRecord) -> OKPKey:
    jwk_kid = record.private_jwk.get("kid", record.kid)
    if jwk_kid != record.kid:
        raise ValueError(f"key record {record.kid!r} holds a JWK with kid {jwk_kid!r}")
    return key_from_private_jwk({**record.private_jwk, "kid": record.kid})


# --- credential claims ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuerProfile:
    """The OB 3.0 issuer `Profile`; `id` is the JWT `iss` (a URL where the JWKS is published, or a URN)."""

    id: str = "urn:iioe:issuer:unesco-ichei"
    name: str = "UNESCO-ICHEI International Institute of Online Education (IIOE)"
    url: str | None = None


DEFAULT_ISSUER = IssuerProfile()


def _urn(prefix: str, value: str) -> str:
    return prefix + quote(value, safe="")


def educator_urn(educator_id: str) -> str:
    return _urn(EDUCATOR_URN, educator_id)


def certificate_urn(certificate_id: str) -> str:
    return _urn(CERTIFICATE_URN, certificate_id)


def programme_urn(programme_id: str) -> str:
    return _urn(PROGRAMME_URN, programme_id)


def build_credential_claims(
    *,
    certificate_id: str,
    educator_id: str,
    programme: Programme,
    issued_at: datetime,
    issuer: IssuerProfile = DEFAULT_ISSUER,
    language: Language = "en",
    credit_system: str = "ECTS",
) -> dict[str, Any]:
    """VC-JWT claims (`iss`, `sub`, `jti`, `iat`, `nbf`, `vc`) of the credential for one earned programme.

    Deliberately takes no e-mail or name: the educator appears only as `urn:iioe:educator:<id>`.
    `language` picks the plain `name`/`description`; all languages are in the `*Localized` fields.
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    if _EMAIL_LIKE.search(educator_id):
        raise ValueError("educator_id looks like an e-mail address; credentials carry opaque ids only")
    issued = issued_at.astimezone(UTC).replace(microsecond=0)
    timestamp = int(issued.timestamp())
    jti, sub = certificate_urn(certificate_id), educator_urn(educator_id)
    credential = {
        "@context": list(CREDENTIAL_CONTEXT),
        "id": jti,
        "type": list(CREDENTIAL_TYPE),
        "issuer": _issuer(issuer),
        "validFrom": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "name": programme.names.get(language),
        "credentialSubject": {
            "id": sub,
            "type": ["AchievementSubject"],
            "creditsEarned": programme.credits,
            "achievement": _achievement(programme, language, credit_system),
        },
        "credentialSchema": [{"id": OB_SCHEMA, "type": "1EdTechJsonSchemaValidator2019"}],
        "certificateId": certificate_id,
    }
    return {"iss": issuer.id, "sub": sub, "jti": jti, "iat": timestamp, "nbf": timestamp, "vc": credential}


def _issuer(issuer: IssuerProfile) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": issuer.id, "type": ["Profile"], "name": issuer.name}
    if issuer.url:
        profile["url"] = issuer.url
    return profile


def _localized(text: LocalizedText) -> list[dict[str, str]]:
    """JSON-LD language-tagged values, the VCDM 2.0 way to carry one text in several languages."""
    return [{"@value": value, "@language": lang} for lang, value in text.items()]


def _achievement(programme: Programme, language: Language, credit_system: str) -> dict[str, Any]:
    return {
        "id": programme_urn(programme.id),
        "type": ["Achievement"],
        "achievementType": "MicroCredential",
        "name": programme.names.get(language),
        "nameLocalized": _localized(programme.names),
        "description": programme.description.get(language),
        "descriptionLocalized": _localized(programme.description),
        "inLanguage": language,
        "criteria": {"narrative": _criteria_narrative(programme, language)},
        "creditsAvailable": programme.credits,
        "creditSystem": credit_system,
        "alignment": [_alignment(programme)],
        "programmeId": programme.id,
        "tier": programme.tier,
        "courseIds": list(programme.course_ids),
        "requires": list(programme.requires),
    }


def _alignment(programme: Programme) -> dict[str, Any]:
    """Where the certificate sits in the national framework, which is what credit transfer relies on."""
    return {
        "type": ["Alignment"],
        "targetName": f"{programme.framework} — {programme.framework_level}",
        "targetFramework": programme.framework,
        "targetCode": programme.framework_level,
        "targetType": "ext:QualificationFrameworkLevel",
        "targetUrl": programme.framework_url or _urn("urn:iioe:framework-level:", programme.framework_level),
    }


_CRITERIA = {
    "en": ("Score at least {score} in each course (best attempt counts):", "Prerequisite certificates: {ids}."),
    "mn": (
        "Хичээл бүрт дор хаяж {score} оноо авсан байх (хамгийн сайн оролдлого тооцогдоно):",
        "Урьдчилан шаардагдах гэрчилгээ: {ids}.",
    ),
    "ru": (
        "Не менее {score} баллов по каждому курсу (засчитывается лучшая попытка):",
        "Необходимые сертификаты: {ids}.",
    ),
}


def _criteria_narrative(programme: Programme, language: Language) -> str:
    head, prerequisites = _CRITERIA[language]
    lines = [head.format(score=f"{programme.min_score:g}")]
    lines += [f"- {course.titles.get(language)}" for course in programme.courses]
    if programme.requires:
        lines.append(prerequisites.format(ids=", ".join(programme.requires)))
    return "\n".join(lines)


# --- signing and verification -------------------------------------------------------------------


def sign_credential(claims: Mapping[str, Any], keyring: KeyRing) -> str:
    """Compact JWS over the claims with the ring's active key; the header's kid tells verifiers which key."""
    header = {"alg": ALGORITHM, "kid": keyring.active_kid, "typ": "JWT"}
    return jwt.encode(header, dict(claims), keyring.active_key, algorithms=[ALGORITHM], registry=_REGISTRY)


class CredentialErrorReason(StrEnum):
    MALFORMED = "malformed"
    UNSUPPORTED_ALG = "unsupported_alg"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    INVALID_CLAIMS = "invalid_claims"


class CredentialError(Exception):
    """Why a token is not a valid credential of ours; `reason` is stable, `detail` is for humans."""

    def __init__(self, reason: CredentialErrorReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedCredential:
    """A credential whose signature and claims checked out (revocation is the store's business)."""

    kid: str
    header: dict[str, Any]
    claims: dict[str, Any]
    certificate_id: str
    educator_id: str
    programme_id: str
    course_ids: tuple[str, ...]
    issuer_id: str
    issued_at: datetime

    @property
    def credential(self) -> dict[str, Any]:
        vc: dict[str, Any] = self.claims["vc"]
        return vc


def verify_credential(
    token: str,
    jwks: Mapping[str, Any],
    *,
    issuer: str | None = None,
    now: datetime | None = None,
    leeway: timedelta = DEFAULT_LEEWAY,
) -> VerifiedCredential:
    """Check a VC-JWT offline against a JWKS dict; raises `CredentialError` with the first failure.

    `issuer`, when given, must equal `iss`; `now` defaults to the current time (for `nbf`/`exp`).
    """
    obj = _extract(token)
    header = obj.headers()
    kid = _check_header(header)
    key = _find_key(jwks, kid)
    if not _signature_ok(obj, key):
        raise CredentialError(CredentialErrorReason.BAD_SIGNATURE, f"signature does not verify with key {kid!r}")
    claims = _payload(obj.payload)
    checked = _check_claims(claims, issuer, now or datetime.now(UTC), leeway)
    return VerifiedCredential(kid=kid, header=dict(header), claims=claims, **checked)


def _malformed(detail: str) -> CredentialError:
    return CredentialError(CredentialErrorReason.MALFORMED, detail)


def _extract(token: str) -> jws.CompactSignature:
    if not isinstance(token, str) or token.count(".") != 2:
        raise _malformed("not a compact JWS (header.payload.signature)")
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_REGISTRY)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise _malformed(f"cannot decode token: {exc}") from None
    if not isinstance(obj.headers(), dict):
        raise _malformed("the JOSE header is not a JSON object")
    return obj


def _check_header(header: Mapping[str, Any]) -> str:
    if "crit" in header or "b64" in header:
        raise _malformed("critical or unencoded-payload header parameters are not supported")
    if header.get("alg") != ALGORITHM:
        raise CredentialError(CredentialErrorReason.UNSUPPORTED_ALG, f"alg {header.get('alg')!r} is not {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise CredentialError(CredentialErrorReason.UNKNOWN_KID, "the token names no kid")
    return kid


def _find_key(jwks: Mapping[str, Any], kid: str) -> OKPKey:
    """The Ed25519 verification key with this kid; other key types under the same kid are ignored."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        raise ValueError("a JWKS is an object with a 'keys' list")
    for jwk in keys:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid and _usable(jwk):
            try:
                return OKPKey.import_key({"kty": "OKP", "crv": CURVE, "x": jwk["x"], "kid": kid})
            except (JoseError, ValueError, TypeError, KeyError) as exc:
                raise CredentialError(CredentialErrorReason.UNKNOWN_KID, f"key {kid!r} is unusable: {exc}") from None
    raise CredentialError(CredentialErrorReason.UNKNOWN_KID, f"no Ed25519 key {kid!r} in the JWKS")


def _usable(jwk: Mapping[str, Any]) -> bool:
    return (
        jwk.get("kty") == "OKP"
        and jwk.get("crv") == CURVE
        and jwk.get("alg", ALGORITHM) == ALGORITHM
        and jwk.get("use", "sig") == "sig"
    )


def _signature_ok(obj: jws.CompactSignature, key: OKPKey) -> bool:
    try:
        return jws.validate_compact(obj, key, algorithms=[ALGORITHM], registry=_REGISTRY)
    except JoseError as exc:
        raise _malformed(f"unacceptable JOSE header: {exc}") from None


def _payload(payload: bytes | None) -> dict[str, Any]:
    try:
        claims = json.loads(payload or b"")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _malformed("the payload is not JSON") from None
    if not isinstance(claims, dict):
        raise _malformed("the payload is not a JSON object")
    return claims


def _invalid(detail: str) -> CredentialError:
    return CredentialError(CredentialErrorReason.INVALID_CLAIMS, detail)


def _string(claims: Mapping[str, Any], name: str, prefix: str = "") -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value.startswith(prefix) or len(value) == len(prefix):
        raise _invalid(f"{name!r} must be a string starting with {prefix!r}" if prefix else f"{name!r} is missing")
    return value


def _numeric_date(claims: Mapping[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(f"{name!r} must be a NumericDate")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise _invalid(f"{name!r} is out of range") from None


def _check_claims(claims: Mapping[str, Any], issuer: str | None, now: datetime, leeway: timedelta) -> dict[str, Any]:
    """Registered claims, then the credential body: ids must agree so no part can be swapped in."""
    iss = _string(claims, "iss")
    if issuer is not None and iss != issuer:
        raise _invalid(f"issuer {iss!r} is not {issuer!r}")
    sub = _string(claims, "sub", EDUCATOR_URN)
    jti = _string(claims, "jti", CERTIFICATE_URN)
    issued_at = _numeric_date(claims, "iat")
    not_before = _numeric_date(claims, "nbf")
    if not_before > now + leeway:
        raise _invalid(f"not valid before {not_before.isoformat()}")
    # Certificates do not expire, but a token that says it does is honoured.
    if "exp" in claims and (expires := _numeric_date(claims, "exp")) <= now - leeway:
        raise _invalid(f"expired at {expires.isoformat()}")
    achievement = _check_vc(claims.get("vc"), iss=iss, sub=sub, jti=jti)
    return {
        "certificate_id": unquote(jti[len(CERTIFICATE_URN) :]),
        "educator_id": unquote(sub[len(EDUCATOR_URN) :]),
        "programme_id": unquote(_string(achievement, "id", PROGRAMME_URN)[len(PROGRAMME_URN) :]),
        "course_ids": _course_ids(achievement),
        "issuer_id": iss,
        "issued_at": issued_at,
    }


def _check_vc(vc: Any, *, iss: str, sub: str, jti: str) -> Mapping[str, Any]:
    """The `vc` claim must be our OpenBadgeCredential and repeat the JWT's iss/sub/jti; returns its achievement."""
    if not isinstance(vc, Mapping):
        raise _invalid("'vc' must be a JSON object")
    types = vc.get("type")
    if not isinstance(types, list) or not set(CREDENTIAL_TYPE).issubset(types):
        raise _invalid(f"'vc.type' must include {', '.join(CREDENTIAL_TYPE)}")
    if vc.get("id") != jti:
        raise _invalid("'vc.id' differs from 'jti'")
    vc_issuer = vc.get("issuer")
    issuer_id = vc_issuer.get("id") if isinstance(vc_issuer, Mapping) else vc_issuer
    if issuer_id != iss:
        raise _invalid("'vc.issuer' differs from 'iss'")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, Mapping) or subject.get("id") != sub:
        raise _invalid("'vc.credentialSubject.id' differs from 'sub'")
    achievement = subject.get("achievement")
    if not isinstance(achievement, Mapping):
        raise _invalid("'vc.credentialSubject.achievement' must be a JSON object")
    return achievement


def _course_ids(achievement: Mapping[str, Any]) -> tuple[str, ...]:
    course_ids = achievement.get("courseIds")
    if not isinstance(course_ids, list) or not course_ids or not all(isinstance(c, str) for c in course_ids):
        raise _invalid("'achievement.courseIds' must be a non-empty list of strings")
    return tuple(course_ids)
