"""PostgreSQL repository of the signing keys: private JWKs sealed at rest, public halves beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.certification.credentials import KeyRecord, PublicKeyRecord
from services.certification.key_vault import KeyVault, KeyVaultError, SealedKey
from services.certification.store_conn import Conn


@dataclass(frozen=True)
class PostgresSigningKeys:
    """Private JWKs sealed with the key vault's KEK (`key_vault.py`); public halves stored beside them."""

    conn: Conn
    vault: KeyVault | None = None

    def _vault(self) -> KeyVault:
        if self.vault is None:
            raise KeyVaultError("no key-encryption key configured: signing keys cannot be read or written")
        return self.vault

    async def lock(self) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('certification:signing-keys', 0))")

    async def records(self) -> list[KeyRecord]:
        rows = await self.conn.fetch(
            "SELECT kid, private_jwk, sealed_private, kek_id, created_at, active, compromised_at FROM signing_keys"
            " ORDER BY created_at"
        )
        return [
            KeyRecord(
                r["kid"],
                self._vault().open(r["kid"], SealedKey(bytes(r["sealed_private"]), r["kek_id"]))
                if r["sealed_private"] is not None
                else dict(r["private_jwk"]),
                r["created_at"],
                r["active"],
                r["compromised_at"],
            )
            for r in rows
        ]

    async def public_keys(self) -> list[PublicKeyRecord]:
        rows = await self.conn.fetch(
            "SELECT kid, public_jwk, created_at, active, compromised_at FROM signing_keys ORDER BY created_at"
        )
        return [
            PublicKeyRecord(r["kid"], dict(r["public_jwk"]), r["created_at"], r["active"], r["compromised_at"])
            for r in rows
        ]

    async def _insert(self, record: KeyRecord, *, active: bool) -> bool:
        sealed = self._vault().seal(record.kid, record.private_jwk)
        public = {k: record.private_jwk[k] for k in ("kty", "crv", "x")}
        inserted = await self.conn.fetchval(
            "INSERT INTO signing_keys (kid, public_jwk, sealed_private, kek_id, created_at, active, compromised_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kid) DO NOTHING RETURNING 1",
            record.kid,
            public,
            sealed.ciphertext,
            sealed.kek_id,
            record.created_at,
            active,
            record.compromised_at,
        )
        return inserted is not None

    async def replace_active(self, record: KeyRecord) -> None:
        await self.conn.execute("UPDATE signing_keys SET active = false WHERE active")
        await self._insert(record, active=True)

    async def add_retired(self, record: KeyRecord) -> bool:
        return await self._insert(record, active=False)

    async def mark_compromised(self, kid: str, since: datetime) -> bool:
        updated = await self.conn.fetchval(
            "UPDATE signing_keys SET compromised_at = LEAST(coalesce(compromised_at, $2), $2), active = false"
            " WHERE kid = $1 RETURNING 1",
            kid,
            since,
        )
        return updated is not None

    async def seal_plaintext(self) -> int:
        """The migration path: seal every key still stored in plaintext, and erase the plaintext."""
        rows = await self.conn.fetch(
            "SELECT kid, private_jwk FROM signing_keys WHERE sealed_private IS NULL ORDER BY kid FOR UPDATE"
        )
        for row in rows:
            sealed = self._vault().seal(row["kid"], dict(row["private_jwk"]))
            await self.conn.execute(
                "UPDATE signing_keys SET sealed_private = $2, kek_id = $3, private_jwk = NULL WHERE kid = $1",
                row["kid"],
                sealed.ciphertext,
                sealed.kek_id,
            )
        return len(rows)
