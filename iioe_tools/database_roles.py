"""One PostgreSQL role per service, owning its own schema and nothing else (issue #9, storage).

`iioe up` runs this against the embedded PostgreSQL as the superuser before it starts the
services, then hands each service a URL with its own role. A service can then read and write
its schema only: analytics cannot `SELECT` certification's tables, and a compromised
notifications process cannot touch certificates. Passwords are random, kept 0600 under the
data dir, and the cluster requires them (scram) for every role but the local superuser.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def role_name(service: str) -> str:
    return f"iioe_{service}"


def _ident(name: str) -> str:
    if not _IDENT.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain identifier")
    return f'"{name}"'


def _passwords(path: Path, services: list[str]) -> dict[str, str]:
    try:
        known: dict[str, str] = json.loads(path.read_text())
    except FileNotFoundError:
        known = {}
    missing = [s for s in services if s not in known]
    if missing:
        known.update({s: secrets.token_urlsafe(24) for s in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(known, handle)
    return known


def service_url(admin_url: str, role: str, password: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(role)}:{quote(password)}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def provision_roles(admin_url: str, schemas: dict[str, str], passwords_file: Path) -> dict[str, str]:
    """Create (or update) each service's role and hand it its schema; returns service → its URL."""
    passwords = _passwords(passwords_file, list(schemas))
    conn = await asyncpg.connect(admin_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(
            f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC"
        )
        urls = {}
        for service, schema in schemas.items():
            role = role_name(service)
            exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            # a password literal cannot be a bind parameter in DDL; the value is ours (url-safe base64)
            await conn.execute(
                f"{verb} ROLE {_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{passwords[service]}'"
            )
            await conn.execute(f"GRANT CONNECT ON DATABASE {_ident(database)} TO {_ident(role)}")
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)} AUTHORIZATION {_ident(role)}")
            await conn.execute(f"ALTER SCHEMA {_ident(schema)} OWNER TO {_ident(role)}")
            # a data dir from before this change: its tables belong to the superuser
            for kind, query in (
                ("TABLE", "SELECT tablename FROM pg_tables WHERE schemaname = $1"),
                ("SEQUENCE", "SELECT sequencename FROM pg_sequences WHERE schemaname = $1"),
                ("VIEW", "SELECT viewname FROM pg_views WHERE schemaname = $1"),
            ):
                for row in await conn.fetch(query, schema):
                    await conn.execute(f"ALTER {kind} {_ident(schema)}.{_ident(row[0])} OWNER TO {_ident(role)}")
            urls[service] = service_url(admin_url, role, passwords[service])
        return urls
    finally:
        await conn.close()
