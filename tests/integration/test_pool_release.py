"""Pool connections come back without asyncpg's reset round trip (`runtime/db.py` `PooledConnection`), but
never with state another transaction could trip over."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from iioe.runtime.db import create_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """One connection, so every acquire gets the same one back."""
    pool = await create_pool(database_url, "pool_release", max_size=1)
    yield pool
    await pool.close()


async def last_query(database_url: str, pid: int) -> str:
    observer = await asyncpg.connect(database_url)
    try:
        return str(await observer.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid))
    finally:
        await observer.close()


async def test_release_sends_no_reset_query_unless_the_connection_listened(
    pool: asyncpg.Pool, database_url: str
) -> None:
    async with pool.acquire() as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await conn.execute("SELECT 'the last statement' AS marker")
    assert "the last statement" in await last_query(database_url, pid)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1")
    assert await last_query(database_url, pid) == "COMMIT;"

    async with pool.acquire() as conn:

        def ignore(*_: object) -> None: ...

        await conn.add_listener("pool_release_channel", ignore)
        await conn.remove_listener("pool_release_channel", ignore)
    assert "pg_advisory_unlock_all" in await last_query(database_url, pid)  # the full reset

    async with pool.acquire() as conn:  # the same connection (max_size=1): nothing left over
        assert await conn.fetchval("SELECT pg_backend_pid()") == pid
        assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0


async def test_a_transaction_left_open_is_rolled_back_on_release(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS kept (n int)")
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("INSERT INTO kept VALUES (1)")
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM kept") == 0
