"""PostgreSQL access: one asyncpg pool per service, confined to the service's own schema,
and versioned SQL migrations applied under an advisory lock so replicas may start together."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from iioe.runtime.logging import get_logger

log = get_logger(__name__)
Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection as handed out by a pool or opened directly."""
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RUNTIME_MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True)
class DatabaseTimeouts:
    """Nothing waits forever: a hung query, a held lock, a forgotten transaction and a dead peer all end.

    `statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout` are enforced by the
    server (session settings of every pooled connection); `command_timeout` by asyncpg on the client
    (it also covers a server that stopped answering); TCP keepalives notice a silently dead peer.
    Migrations lift the statement and lock timeouts for their own transaction.
    """

    command_seconds: float = 60.0
    statement_ms: int = 30_000
    lock_ms: int = 10_000
    idle_in_transaction_ms: int = 60_000
    keepalives_idle_seconds: int = 30
    keepalives_interval_seconds: int = 10
    keepalives_count: int = 3
    connect_seconds: float = 10.0

    def server_settings(self) -> dict[str, str]:
        return {
            "statement_timeout": str(self.statement_ms),
            "lock_timeout": str(self.lock_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_ms),
            "tcp_keepalives_idle": str(self.keepalives_idle_seconds),
            "tcp_keepalives_interval": str(self.keepalives_interval_seconds),
            "tcp_keepalives_count": str(self.keepalives_count),
        }


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def load_migrations(**directories: Path) -> list[Migration]:
    """`NNN_name.sql` files of each labelled directory, versioned `<label>/<stem>`, in order."""
    found: list[Migration] = []
    for label, directory in directories.items():
        for path in sorted(directory.glob("*.sql")):
            found.append(Migration(f"{label}/{path.stem}", path.read_text(encoding="utf-8")))
    return found


def quote_schema(schema: str) -> str:
    if not _SCHEMA_RE.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} is not a plain lower-case identifier")
    return f'"{schema}"'


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def connect_with_retry(dsn: str, attempts: int = 30, delay: float = 0.5) -> asyncpg.Connection:
    """Connect, retrying while the server is starting up."""
    for attempt in range(1, attempts + 1):
        try:
            conn: asyncpg.Connection = await asyncpg.connect(dsn)
            return conn
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            if attempt == attempts:
                raise
            log.info("database not ready, retrying", attempt=attempt, error=str(exc))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class PooledConnection(asyncpg.Connection):
    """A pool connection released without asyncpg's reset round trip (`SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`) — one round trip less per transaction, in every service.

    Our transactions leave no session state: locks are transaction-scoped (`pg_advisory_xact_lock`; the one
    session lock, certification's restore, is released in a `finally`), settings are `SET LOCAL`, cursors
    live inside transactions. An open transaction is still rolled back by asyncpg, and a connection that
    has `LISTEN`ed gets the full reset."""

    _listened = False

    async def add_listener(self, channel: str, callback: Any) -> None:
        self._listened = True  # for good: asyncpg forgets its listeners before it asks for the reset query
        await super().add_listener(channel, callback)

    def get_reset_query(self) -> str:
        return str(super().get_reset_query()) if self._listened else ""


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeouts: DatabaseTimeouts | None = None,
) -> asyncpg.Pool:
    """A pool whose `search_path` is the service's schema (created if missing), with `timeouts`."""
    t = timeouts or DatabaseTimeouts()
    conn = await connect_with_retry(dsn)
    try:
        # a service role may own its schema without the right to create schemas: look before creating
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_schema(schema)}")
    except asyncpg.UniqueViolationError:
        pass  # another replica created it at the same moment
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=PooledConnection,
        command_timeout=t.command_seconds,
        timeout=t.connect_seconds,
        server_settings={"search_path": schema, "application_name": f"iioe-{schema}", **t.server_settings()},
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, schema: str, migrations: Iterable[Migration]) -> list[str]:
    """Apply pending migrations in one transaction; returns the versions applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        # a migration may rewrite a large table and waits for other replicas' migrations: no session timeouts
        await conn.execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"iioe-migrate-{schema}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in migrations:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", migration.version)
            applied_now.append(migration.version)
    if applied_now:
        log.info("migrations applied", schema=schema, versions=applied_now)
    return applied_now


async def setup_database(
    dsn: str, schema: str, service_migrations: Path, max_size: int = 10, timeouts: DatabaseTimeouts | None = None
) -> asyncpg.Pool:
    """Pool + runtime tables (outbox, inbox) + the service's own migrations."""
    pool = await create_pool(dsn, schema, max_size=max_size, timeouts=timeouts)
    await migrate(pool, schema, load_migrations(runtime=RUNTIME_MIGRATIONS, service=service_migrations))
    return pool
