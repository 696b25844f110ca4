"""Ed25519 keys, the key ring and JWS signing (alg "EdDSA") for VC-JWT credentials.

A certificate must stay verifiable years later, offline, with any JOSE library: keys are named by
`kid`, retired keys stay in the published JWKS, and only EdDSA is ever accepted (no alg confusion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm, JWSAlgModel
from joserfc.jwk import OKPKey

__all__ = [
    "ALGORITHM",
    "CURVE",
    "REGISTRY",
    "KeyRecord",
    "KeyRing",
    "PublicKeyRecord",
    "generate_signing_key",
    "key_from_private_jwk",
    "key_to_private_jwk",
    "public_jwk",
    "sign_credential",
]

ALGORITHM = "EdDSA"
CURVE: Final = "Ed25519"


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


REGISTRY = _Registry(algorithms=[ALGORITHM])
"""The JOSE registry every sign and verify call uses: EdDSA only."""


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
    compromised_at: datetime | None = None
    """Set when the key was retired as compromised: what it signed from then on is not trusted."""


COMPROMISED_SINCE = "compromised_since"
"""JWK member (RFC 7517 allows extra members; verifiers ignore what they do not know) marking a key whose
signatures from that time on are not to be trusted; the key stays published so earlier credentials verify."""


@dataclass(frozen=True)
class PublicKeyRecord:
    """The publishable half of a stored key, read without opening the private key (the JWKS is built from it)."""

    kid: str
    public_jwk: Mapping[str, Any]
    created_at: datetime
    active: bool
    compromised_at: datetime | None = None

    def jwk(self) -> dict[str, Any]:
        jwk = {k: self.public_jwk[k] for k in ("kty", "crv", "x") if k in self.public_jwk}
        jwk.update(kid=self.kid, alg=ALGORITHM, use="sig")
        if self.compromised_at is not None:
            jwk[COMPROMISED_SINCE] = self.compromised_at.astimezone(UTC).isoformat()
        return jwk


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
        keys = []
        for r in self._records:
            jwk = public_jwk(self._keys[r.kid])
            if r.compromised_at is not None:
                jwk[COMPROMISED_SINCE] = r.compromised_at.astimezone(UTC).isoformat()
            keys.append(jwk)
        return {"keys": keys}


def _record(key: OKPKey, now: datetime | None, *, active: bool) -> KeyRecord:
    jwk = key_to_private_jwk(key)
    return KeyRecord(kid=str(jwk["kid"]), private_jwk=jwk, created_at=now or datetime.now(UTC), active=active)


def _key_of(record: KeyRecord) -> OKPKey:
    jwk_kid = record.private_jwk.get("kid", record.kid)
    if jwk_kid != record.kid:
        raise ValueError(f"key record {record.kid!r} holds a JWK with kid {jwk_kid!r}")
    return key_from_private_jwk({**record.private_jwk, "kid": record.kid})


def sign_credential(claims: Mapping[str, Any], keyring: KeyRing) -> str:
    """Compact JWS over the claims with the ring's active key; the header's kid tells verifiers which key."""
    header = {"alg": ALGORITHM, "kid": keyring.active_kid, "typ": "JWT"}
    return jwt.encode(header, dict(claims), keyring.active_key, algorithms=[ALGORITHM], registry=REGISTRY)
