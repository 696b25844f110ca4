"""W3C Bitstring Status List v1.0: the `credentialStatus` entries of a credential, the signed status list
credential, and reading a bit back (offline, from a cached list).

The bitstring: bit `i` is the (i % 8)-th most significant bit of byte i // 8 (index 0 is the left-most
bit); `encodedList` is the GZIP of the bytes, base64url without padding, with the multibase prefix `u`.
A list has at least 131,072 entries (16 KiB) so that fetching it reveals nothing about which credential
a verifier is checking.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.certification.credentials.verification import CredentialError, CredentialErrorReason, verify_signature

__all__ = [
    "STATUS_ENTRY_TYPE",
    "STATUS_LIST_CONTEXT",
    "STATUS_LIST_CREDENTIAL_TYPE",
    "STATUS_LIST_MEDIA_TYPE",
    "ListStatus",
    "bit_is_set",
    "build_status_list_claims",
    "decode_status_list",
    "encode_status_list",
    "status_entry",
    "verify_status_list",
]

STATUS_ENTRY_TYPE = "BitstringStatusListEntry"
STATUS_LIST_CREDENTIAL_TYPE = "BitstringStatusListCredential"
STATUS_LIST_CONTEXT = "https://www.w3.org/ns/credentials/v2"
STATUS_LIST_MEDIA_TYPE = "application/vc+jwt"
MULTIBASE_BASE64URL = "u"


def encode_status_list(size: int, set_indexes: Iterable[int]) -> str:
    """`encodedList` of a `size`-bit list with the given bits set (deterministic: GZIP mtime 0)."""
    if size <= 0 or size % 8:
        raise ValueError("a status list holds a positive multiple of 8 bits")
    bits = bytearray(size // 8)
    for index in set_indexes:
        if not 0 <= index < size:
            raise ValueError(f"index {index} is outside a list of {size}")
        bits[index // 8] |= 0x80 >> (index % 8)
    compressed = gzip.compress(bytes(bits), compresslevel=9, mtime=0)
    return MULTIBASE_BASE64URL + base64.urlsafe_b64encode(compressed).decode("ascii").rstrip("=")


def decode_status_list(encoded: str) -> bytes:
    """The raw bitstring of an `encodedList` (multibase 'u' prefix optional, padding tolerated)."""
    text = encoded[1:] if encoded.startswith(MULTIBASE_BASE64URL) else encoded
    try:
        compressed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return gzip.decompress(compressed)
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as exc:
        raise ValueError(f"not a GZIP'd base64url bitstring: {exc}") from None


def bit_is_set(bits: bytes, index: int) -> bool:
    if not 0 <= index < len(bits) * 8:
        raise ValueError(f"index {index} is outside a list of {len(bits) * 8}")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def status_entry(list_url: str, purpose: str, index: int) -> dict[str, str]:
    """One `credentialStatus` entry (`statusListIndex` is a string, as the spec's JSON-LD context says)."""
    return {
        "id": f"{list_url}#{index}",
        "type": STATUS_ENTRY_TYPE,
        "statusPurpose": purpose,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def build_status_list_claims(
    *, list_url: str, purpose: str, size: int, set_indexes: Iterable[int], issuer_id: str, valid_from: datetime
) -> dict[str, Any]:
    """VC-JWT claims of a BitstringStatusListCredential; identical inputs give identical claims (an ETag)."""
    issued = valid_from.astimezone(UTC).replace(microsecond=0)
    timestamp = int(issued.timestamp())
    credential = {
        "@context": [STATUS_LIST_CONTEXT],
        "id": list_url,
        "type": ["VerifiableCredential", STATUS_LIST_CREDENTIAL_TYPE],
        "issuer": issuer_id,
        "validFrom": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": purpose,
            "encodedList": encode_status_list(size, set_indexes),
        },
    }
    return {
        "iss": issuer_id,
        "sub": f"{list_url}#list",
        "jti": list_url,
        "iat": timestamp,
        "nbf": timestamp,
        "vc": credential,
    }


@dataclass(frozen=True)
class ListStatus:
    """A verified status list credential: its URL, purpose and bits."""

    list_url: str
    purpose: str
    bits: bytes
    issuer_id: str
    valid_from: str | None

    def is_set(self, index: int) -> bool:
        return bit_is_set(self.bits, index)


def verify_status_list(token: str, jwks: Mapping[str, Any], *, issuer: str | None = None) -> ListStatus:
    """Check a status list credential's signature and shape against the JWKS; raises `CredentialError`."""
    _, _, claims = verify_signature(token, jwks)
    vc = claims.get("vc")
    if not isinstance(vc, Mapping) or STATUS_LIST_CREDENTIAL_TYPE not in (vc.get("type") or []):
        raise _invalid(f"not a {STATUS_LIST_CREDENTIAL_TYPE}")
    iss = claims.get("iss")
    vc_issuer = vc.get("issuer")
    vc_issuer_id = vc_issuer.get("id") if isinstance(vc_issuer, Mapping) else vc_issuer
    if not isinstance(iss, str) or vc_issuer_id != iss or (issuer is not None and iss != issuer):
        raise _invalid(f"issuer {iss!r} is not the expected one")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, Mapping) or not isinstance(subject.get("encodedList"), str):
        raise _invalid("no credentialSubject.encodedList")
    purpose, list_url = subject.get("statusPurpose"), vc.get("id")
    if not isinstance(purpose, str) or not isinstance(list_url, str):
        raise _invalid("statusPurpose and id must be strings")
    try:
        bits = decode_status_list(subject["encodedList"])
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    valid_from = vc.get("validFrom")
    return ListStatus(list_url, purpose, bits, iss, valid_from if isinstance(valid_from, str) else None)


def _invalid(detail: str) -> CredentialError:
    return CredentialError(CredentialErrorReason.INVALID_CLAIMS, detail)
