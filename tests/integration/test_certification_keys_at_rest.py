"""Signing keys at rest on real PostgreSQL: sealed with a KEK outside the database, plaintext rows of an
older release sealed on first start, the JWKS served from public halves, backups through the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import asyncpg
import pytest

from iioe.runtime.db import setup_database
from services.certification.credentials import KeyRing
from services.certification.key_vault import KeyVault
from services.certification.main import MIGRATIONS, create_app
from services.certification.settings import SOURCE
from services.certification.store import PostgresUnitOfWork
from tests.support.certification import settings_for
from tests.support.helpers import Infra, running_app

pytestmark = pytest.mark.integration
KEK = "B" * 43  # base64url of 32 bytes


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "iioe_tools.cli.main",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_plaintext_keys_of_an_older_release_are_sealed_on_first_start(
    infra: Infra, database_url: str, ref: str, tmp_path: Path
) -> None:
    # an older release's database: migration 001 only, a plaintext private JWK
    pool = await setup_database(database_url, "certification", tmp_path / "none", max_size=1)
    await pool.close()
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "certification"})
    try:
        await conn.execute((MIGRATIONS / "001_certification.sql").read_text())
        await conn.execute("INSERT INTO schema_migrations(version) VALUES ('service/001_certification')")
        old = KeyRing.generate().records()[0]
        await conn.execute(
            "INSERT INTO signing_keys (kid, private_jwk, created_at, active) VALUES ($1, $2::jsonb, $3, true)",
            old.kid,
            json.dumps(dict(old.private_jwk)),
            old.created_at,
        )
    finally:
        await conn.close()

    app = create_app(
        settings_for(infra.nats_url, database_url, f"{ref}-", IIOE_DATA_DIR=str(tmp_path), key_encryption_key=None)
    )
    async with running_app(app) as http:
        jwks = (await http.get("/.well-known/jwks.json")).json()
        assert [k["kid"] for k in jwks["keys"]] == [old.kid] and "d" not in jwks["keys"][0]
        assert jwks["keys"][0]["x"] == old.private_jwk["x"]

    kek_file = tmp_path / "certification" / "kek"
    assert oct(kek_file.stat().st_mode & 0o777) == "0o600"
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "certification"})
    try:
        row = await conn.fetchrow("SELECT private_jwk, sealed_private, kek_id FROM signing_keys")
        assert row is not None
        dump = "\n".join(str(r) for r in await conn.fetch("SELECT * FROM signing_keys"))
    finally:
        await conn.close()
    assert row["private_jwk"] is None and row["sealed_private"] is not None
    assert str(old.private_jwk["d"]) not in dump  # the database alone no longer holds the private key

    vault = KeyVault(bytes.fromhex("00" * 32))  # another KEK cannot open it
    pool = await setup_database(database_url, "certification", MIGRATIONS, max_size=1)
    try:
        async with PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=vault).transaction() as tx:
            with pytest.raises(Exception, match="key-encryption key"):
                await tx.keys.records()
            assert [r.kid for r in await tx.keys.public_keys()] == [old.kid]  # the JWKS needs no KEK
    finally:
        await pool.close()


async def test_keys_export_and_import_restore_the_signing_keys_into_an_empty_database(
    infra: Infra, database_url: str, ref: str, tmp_path: Path, postgres_url: str
) -> None:
    env = {"IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY": KEK, "IIOE_CERTIFICATION_KEY_BACKUP_PASSPHRASE": "s3cret pass"}
    app = create_app(settings_for(infra.nats_url, database_url, f"{ref}-", key_encryption_key=KEK))
    async with running_app(app) as http:
        first = (await http.get("/.well-known/jwks.json")).json()["keys"]
    backup = tmp_path / "keys.backup"
    code, out = await run_cli(
        env, "certification", "keys", f"--database-url={database_url}", "export", f"--out={backup}"
    )
    assert code == 0, out
    assert first[0]["kid"] not in backup.read_text() and oct(backup.stat().st_mode & 0o777) == "0o600"

    other_db = database_url.rsplit("/", 1)[0] + f"/{ref}_restored"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{ref}_restored"')
    finally:
        await admin.close()
    code, out = await run_cli(
        {**env, "IIOE_CERTIFICATION_KEY_BACKUP_PASSPHRASE": "wrong"},
        "certification", "keys", f"--database-url={other_db}", "import", str(backup),
    )  # fmt: skip
    assert code == 1 and "passphrase" in out
    other_kek = {**env, "IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY": "C" * 43}  # a new KEK at the restored site
    code, out = await run_cli(other_kek, "certification", "keys", f"--database-url={other_db}", "import", str(backup))
    assert code == 0 and first[0]["kid"] in out, out
    code, out = await run_cli(
        other_kek, "certification", "keys", f"--database-url={other_db}", "retire", f"--compromised={first[0]['kid']}"
    )
    assert code == 0, out

    app = create_app(settings_for(infra.nats_url, other_db, f"{ref}-b-", key_encryption_key="C" * 43))
    async with running_app(app) as http:
        keys = (await http.get("/.well-known/jwks.json")).json()["keys"]
    restored = next(k for k in keys if k["kid"] == first[0]["kid"])
    assert restored["x"] == first[0]["x"] and "compromised_since" in restored and len(keys) == 2
