"""One PostgreSQL role per service (issue #9): each service reaches its own schema only."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from iioe_tools.database_roles import provision_roles, role_name, service_url
from tests.support.helpers import unique_ref

pytestmark = pytest.mark.integration


async def test_a_service_role_cannot_read_another_services_schema(database_url: str, tmp_path: Path) -> None:
    ref = unique_ref("r")
    schemas = {f"certification_{ref}": f"certification_{ref}", f"analytics_{ref}": f"analytics_{ref}"}
    urls = await provision_roles(database_url, schemas, tmp_path / "roles.json")
    cert_schema, ana_schema = schemas.values()

    cert = await asyncpg.connect(urls[f"certification_{ref}"])
    try:
        await cert.execute(f'CREATE TABLE "{cert_schema}".certificates (id text primary key)')
        await cert.execute(f"INSERT INTO \"{cert_schema}\".certificates VALUES ('c1')")
    finally:
        await cert.close()

    analytics = await asyncpg.connect(urls[f"analytics_{ref}"])
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await analytics.fetch(f'SELECT * FROM "{cert_schema}".certificates')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await analytics.execute(f'CREATE TABLE "{cert_schema}".planted (x int)')
        await analytics.execute(f'CREATE TABLE "{ana_schema}".totals (n int)')  # its own schema works
    finally:
        await analytics.close()

    # a second provisioning (every `iioe up`) keeps the same passwords and ownership
    assert await provision_roles(database_url, schemas, tmp_path / "roles.json") == urls
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(service_url(database_url, role_name(f"analytics_{ref}"), "not-the-password"))
