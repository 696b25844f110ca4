"""Verifying a VC-JWT credential offline against a JWKS: header, signature, then claims.

Each failure has a stable reason code (`CredentialErrorReason`), because verifiers (the HTTP
endpoint, `iioe verify`) report it to people who must decide whether to trust a certificate.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from services.certification.credentials.claims import CERTIFICATE_URN, CREDENTIAL_TYPE, EDUCATOR_URN, PROGRAMME_URN
from services.certification.credentials.signing import ALGORITHM, COMPROMISED_SINCE, CURVE, REGISTRY

__all__ = [
    "DEFAULT_LEEWAY",
    "CredentialError",
    "CredentialErrorReason",
    "VerifiedCredential",
    "verify_credential",
    "verify_signature",
]

DEFAULT_LEEWAY = timedelta(seconds=60)


class CredentialErrorReason(StrEnum):
    MALFORMED = "malformed"
    UNSUPPORTED_ALG = "unsupported_alg"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    INVALID_CLAIMS = "invalid_claims"
    KEY_COMPROMISED = "key_compromised"
    """Signed by a key the issuer retired as compromised, at or after the compromise time."""


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
    kid, header, claims = verify_signature(token, jwks)
    checked = _check_claims(claims, issuer, now or datetime.now(UTC), leeway)
    compromised = compromised_since(jwks, kid)
    if compromised is not None and checked["issued_at"] >= compromised:
        raise CredentialError(
            CredentialErrorReason.KEY_COMPROMISED,
            f"key {kid!r} was retired as compromised from {compromised.isoformat()}; this credential says it was"
            f" issued at {checked['issued_at'].isoformat()}",
        )
    return VerifiedCredential(kid=kid, header=header, claims=claims, **checked)


def verify_signature(token: str, jwks: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(kid, header, claims) of an EdDSA compact JWS whose signature checks out against the JWKS; the claims
    are the caller's to check (a status list credential says other things than a certificate)."""
    obj = _extract(token)
    header = obj.headers()
    kid = _check_header(header)
    key = _find_key(jwks, kid)
    if not _signature_ok(obj, key):
        raise CredentialError(CredentialErrorReason.BAD_SIGNATURE, f"signature does not verify with key {kid!r}")
    return kid, dict(header), _payload(obj.payload)


def _malformed(detail: str) -> CredentialError:
    return CredentialError(CredentialErrorReason.MALFORMED, detail)


def _extract(token: str) -> jws.CompactSignature:
    if not isinstance(token, str) or token.count(".") != 2:
        raise _malformed("not a compact JWS (header.payload.signature)")
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=REGISTRY)
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


def compromised_since(jwks: Mapping[str, Any], kid: str) -> datetime | None:
    """When the JWKS marks key `kid` as compromised (its `compromised_since` member), else None."""
    for jwk in jwks.get("keys") or []:
        if isinstance(jwk, Mapping) and jwk.get("kid") == kid and isinstance(jwk.get(COMPROMISED_SINCE), str):
            try:
                since = datetime.fromisoformat(jwk[COMPROMISED_SINCE])
            except ValueError:
                return datetime.min.replace(tzinfo=UTC)  # unreadable mark: trust nothing from this key
            return since if since.tzinfo else since.replace(tzinfo=UTC)
    return None


def _usable(jwk: Mapping[str, Any]) -> bool:
    return (
        jwk.get("kty") == "OKP"
        and jwk.get("crv") == CURVE
        and jwk.get("alg", ALGORITHM) == ALGORITHM
        and jwk.get("use", "sig") == "sig"
    )


def _signature_ok(obj: jws.CompactSignature, key: OKPKey) -> bool:
    try:
        return jws.validate_compact(obj, key, algorithms=[ALGORITHM], registry=REGISTRY)
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
