"""Signing keys in the database: one active Ed25519 key shared by every replica, retired keys kept.

Keys live in the service's own schema so that replicas need no shared file system; the advisory lock
makes "create the first key" and "rotate" safe when several replicas do it at the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from iioe.runtime.logging import get_logger
from services.certification import store
from services.certification.credentials import KeyRecord, KeyRing, generate_signing_key, key_to_private_jwk

log = get_logger(__name__)


def _new_record(now: datetime) -> KeyRecord:
    jwk = key_to_private_jwk(generate_signing_key(now))
    return KeyRecord(kid=str(jwk["kid"]), private_jwk=jwk, created_at=now, active=True)


async def ensure_keyring(conn: store.Conn) -> KeyRing:
    """The key ring, creating the first key if there is none (call inside a transaction)."""
    records = await store.key_records(conn)
    if any(r.active for r in records):
        return KeyRing(records)
    await store.lock_signing_keys(conn)
    records = await store.key_records(conn)  # another replica may have created it while we waited
    if any(r.active for r in records):
        return KeyRing(records)
    record = _new_record(datetime.now(UTC))
    await store.replace_active_key(conn, record)
    log.info("signing key created", kid=record.kid)
    return KeyRing([*records, record])


async def rotate_key(conn: store.Conn) -> KeyRing:
    """Sign with a new key from now on; the old one stays in the JWKS so issued credentials keep verifying."""
    await store.lock_signing_keys(conn)
    previous = await store.key_records(conn)
    record = _new_record(datetime.now(UTC))
    await store.replace_active_key(conn, record)
    retired = [r for r in previous if r.active]
    log.info("signing key rotated", kid=record.kid, retired=[r.kid for r in retired])
    return KeyRing([*(KeyRecord(r.kid, r.private_jwk, r.created_at, False) for r in previous), record])


async def load_keyring(pool: asyncpg.Pool) -> KeyRing:
    """For readers (JWKS, verification): the ring as stored, created if this is the very first start."""
    async with pool.acquire() as conn, conn.transaction():
        return await ensure_keyring(conn)
