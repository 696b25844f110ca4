"""Signing keys through the unit of work: one active Ed25519 key shared by every replica, retired keys kept.

Keys live in the service's own store so that replicas need no shared file system; the repository's lock
makes "create the first key" and "rotate" safe when several replicas do it at the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

from iioe.runtime.logging import get_logger
from services.certification.credentials import KeyRecord, KeyRing, generate_signing_key, key_to_private_jwk
from services.certification.ports import SigningKeyRepository

log = get_logger(__name__)


def _new_record(now: datetime) -> KeyRecord:
    jwk = key_to_private_jwk(generate_signing_key(now))
    return KeyRecord(kid=str(jwk["kid"]), private_jwk=jwk, created_at=now, active=True)


async def ensure_keyring(keys: SigningKeyRepository) -> KeyRing:
    """The key ring, creating the first key if there is none (inside a transaction)."""
    records = await keys.records()
    if any(r.active for r in records):
        return KeyRing(records)
    await keys.lock()
    records = await keys.records()  # another replica may have created it while we waited
    if any(r.active for r in records):
        return KeyRing(records)
    record = _new_record(datetime.now(UTC))
    await keys.replace_active(record)
    log.info("signing key created", kid=record.kid)
    return KeyRing([*records, record])


async def rotate_key(keys: SigningKeyRepository) -> KeyRing:
    """Sign with a new key from now on; the old one stays in the JWKS so issued credentials keep verifying."""
    await keys.lock()
    previous = await keys.records()
    record = _new_record(datetime.now(UTC))
    await keys.replace_active(record)
    log.info("signing key rotated", kid=record.kid, retired=[r.kid for r in previous if r.active])
    return KeyRing([*(KeyRecord(r.kid, r.private_jwk, r.created_at, False) for r in previous), record])
