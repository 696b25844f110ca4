"""Signing keys through the unit of work: one active Ed25519 key shared by every replica, retired keys kept.

Keys live in the service's own store so that replicas need no shared file system; the repository's lock
makes "create the first key" and "rotate" safe when several replicas do it at the same moment.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from iioe.runtime.logging import get_logger
from services.certification.credentials import (
    KeyRecord,
    KeyRing,
    generate_signing_key,
    key_from_private_jwk,
    key_to_private_jwk,
)
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
    return KeyRing([*(replace(r, active=False) for r in previous), record])


async def public_jwks(keys: SigningKeyRepository) -> dict[str, list[dict[str, Any]]]:
    """The JWKS from the stored public halves (no private key is opened); compromised keys stay, marked."""
    records = sorted(await keys.public_keys(), key=lambda r: (not r.active, -r.created_at.timestamp(), r.kid))
    return {"keys": [r.jwk() for r in records]}


async def retire_compromised(keys: SigningKeyRepository, kid: str, since: datetime) -> KeyRing:
    """Distrust what `kid` signed from `since` on; if it is the signing key, sign with a new one from now."""
    await keys.lock()
    records = await keys.records()
    if not any(r.kid == kid for r in records):
        raise KeyError(kid)
    if any(r.kid == kid and r.active for r in records):
        await rotate_key(keys)
    await keys.mark_compromised(kid, since)
    log.warning("signing key retired as compromised", kid=kid, since=since.isoformat())
    return KeyRing(await keys.records())


async def import_keys(keys: SigningKeyRepository, imported: list[KeyRecord]) -> list[str]:
    """Add keys from a backup (restore): kids already stored are left alone; the backup's active key signs
    only if no key is active here yet. Returns the kids added."""
    await keys.lock()
    stored = {r.kid: r for r in await keys.records()}
    has_active = any(r.active for r in stored.values())
    added = []
    for record in sorted(imported, key=lambda r: r.active):  # retired first, so the active one is replaced last
        key_from_private_jwk({**record.private_jwk, "kid": record.kid})  # refuse anything but an Ed25519 key
        if record.kid in stored:
            continue
        if record.active and not has_active and record.compromised_at is None:
            await keys.replace_active(record)
            has_active = True
        else:
            await keys.add_retired(replace(record, active=False))
        added.append(record.kid)
    log.info("signing keys imported", kids=added)
    return added
