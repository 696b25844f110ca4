"""`iioe certification keys …`: retire a compromised key, export and import the signing keys (backup/restore).

These act on the service's database directly (like `rotate-key`), with the key-encryption key of the
service's settings (`IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY`, its file, or `IIOE_DATA_DIR/certification/kek`).
Backups are sealed with a passphrase from `IIOE_CERTIFICATION_KEY_BACKUP_PASSPHRASE` or typed at a prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from iioe.runtime.db import setup_database
from iioe.runtime.settings import DEFAULT_DATABASE_URL
from services.certification import keys
from services.certification.key_vault import PASSPHRASE_ENV, KeyVaultError, export_backup, import_backup
from services.certification.ports import Repositories

T = TypeVar("T")


async def in_database(database_url: str, schema: str, work: Callable[[Repositories], Awaitable[T]]) -> T:
    """Run `work` in one transaction of the certification database (migrations applied first)."""
    from services.certification.main import MIGRATIONS
    from services.certification.settings import SOURCE, CertificationSettings
    from services.certification.store import PostgresUnitOfWork

    vault = CertificationSettings().key_vault()
    pool = await setup_database(database_url, schema, MIGRATIONS, max_size=1)
    try:
        uow = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=vault)
        async with uow.transaction() as tx:
            return await work(tx)
    finally:
        await pool.close()


def passphrase(*, confirm: bool) -> str:
    value = os.environ.get(PASSPHRASE_ENV)
    if value:
        return value
    if not sys.stdin.isatty():
        raise KeyVaultError(f"no passphrase: set {PASSPHRASE_ENV} or run on a terminal")
    first = getpass.getpass("backup passphrase: ")
    if confirm and getpass.getpass("again: ") != first:
        raise KeyVaultError("the passphrases differ")
    return first


def _since(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise KeyVaultError(f"--since {text!r} is not an RFC 3339 / ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run_keys(args: argparse.Namespace) -> int:
    try:
        if args.keys_command == "retire":
            since = _since(args.since)

            async def retire(tx: Repositories) -> list[str]:
                try:
                    ring = await keys.retire_compromised(tx.keys, args.compromised, since)
                except KeyError:
                    raise KeyVaultError(f"no signing key {args.compromised!r}") from None
                return [ring.active_kid, *ring.kids]

            active, *kids = asyncio.run(in_database(args.database_url, args.schema, retire))
            print(f"key {args.compromised} retired as compromised since {since.isoformat()}")
            print(f"active key: {active}")
            print(f"published keys (JWKS): {', '.join(kids)}")
        elif args.keys_command == "export":
            secret = passphrase(confirm=True)

            async def export(tx: Repositories) -> bytes:
                return export_backup(await tx.keys.records(), secret)

            data = asyncio.run(in_database(args.database_url, args.schema, export))
            out = Path(args.out)
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            print(f"signing keys exported (sealed with the passphrase) to {out}")
        else:
            records = import_backup(Path(args.file).read_bytes(), passphrase(confirm=False))

            async def restore(tx: Repositories) -> list[str]:
                return await keys.import_keys(tx.keys, records)

            added = asyncio.run(in_database(args.database_url, args.schema, restore))
            print(f"imported {len(added)} of {len(records)} keys: {', '.join(added) or 'all already present'}")
    except (KeyVaultError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(csub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    k = csub.add_parser("keys", help="signing keys: retire a compromised key, export / import a backup")
    k.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    k.add_argument("--schema", default="certification")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    r = ksub.add_parser("retire", help="distrust what a key signed from a time on (it stays in the JWKS, marked)")
    r.add_argument("--compromised", required=True, metavar="KID")
    r.add_argument("--since", metavar="TIME", help="RFC 3339 compromise time (default now)")
    e = ksub.add_parser("export", help=f"back up every signing key, sealed with a passphrase (${PASSPHRASE_ENV})")
    e.add_argument("--out", required=True, metavar="FILE")
    i = ksub.add_parser("import", help="restore signing keys from a backup (kids already present are kept)")
    i.add_argument("file", metavar="FILE")
    k.set_defaults(func=run_keys)
