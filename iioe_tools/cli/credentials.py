"""`iioe credentials`: partner systems' credentials (NATS and HTTP) and operator tokens.

`iioe credentials partner <institution> [--json]` creates (or shows) what one institution's
partner system needs, for the platform `iioe up` runs on the same `IIOE_DATA_DIR`:
its NATS user (scoped to that institution, see `iioe.access`), its inbox prefix and its HTTP
bearer token. `iioe credentials revoke <institution>` ends both at once: the NATS user is
removed and the running server disconnects it; the HTTP token stops working within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import nats
import nats.errors

from iioe.access import DASHBOARD_USER, partner_user
from iioe.reference import load_institutions
from iioe.runtime.logging import configure_logging
from iioe.runtime.nats import connect
from iioe.runtime.tokens import OPERATOR_SCOPES, TokenGrant, delete_grants, new_token, put_grant
from iioe_tools.nats_auth import NatsAuth
from iioe_tools.operator import data_dir, embedded_auth, operator_connection


class CredentialsError(RuntimeError):
    """Why credentials cannot be made, phrased for the operator."""


def _platform() -> NatsAuth:
    auth = embedded_auth()
    if auth is None:
        raise CredentialsError(
            f"no platform in {data_dir().resolve()}: start it with `iioe up` (same IIOE_DATA_DIR), "
            "or, with an external NATS, add the partner to its accounts configuration (deploy/nats/)"
        )
    return auth


def _check_institution(code: str) -> None:
    extra = os.environ.get("IIOE_INSTITUTIONS_FILE")
    institutions = load_institutions(Path(extra) if extra else None)
    if code not in institutions:
        raise CredentialsError(f"unknown institution {code!r}: see `GET /v1/institutions` for the catalogue")


async def _wait_until_accepted(url: str, user: str, password: str, timeout: float = 10.0) -> None:
    """The server reloads its configuration asynchronously: hand out credentials that work now."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            nc = await nats.connect(url, user=user, password=password, allow_reconnect=False, connect_timeout=2)
            await nc.close()
            return
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise CredentialsError(f"the NATS server did not accept the new user: {exc!r}") from exc
            await asyncio.sleep(0.1)


async def _wait_until_refused(url: str, user: str, password: str, timeout: float = 10.0) -> None:
    """After a revocation the credentials must really be dead before we say so."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            nc = await nats.connect(url, user=user, password=password, allow_reconnect=False, connect_timeout=2)
        except nats.errors.Error:
            return
        await nc.close()
        await asyncio.sleep(0.1)
    raise CredentialsError(f"the NATS server still accepts {user} after the revocation")


async def partner_credentials(institution: str) -> dict[str, Any]:
    _check_institution(institution)
    auth = _platform()
    creds, _ = auth.add_partner(institution)
    url, operator = operator_connection()
    await _wait_until_accepted(url, creds.user, creds.password)
    token = auth.http_token(creds.user)
    nc = await connect(url, "iioe-credentials", connect_attempts=3, auth=operator)
    try:
        grant = TokenGrant(kind="institution", actor=creds.user, institution=institution)
        await put_grant(nc.jetstream(), token, grant)
    finally:
        await nc.close()
    return {
        "institution": institution,
        "nats_url": url,
        "user": creds.user,
        "password": creds.password,
        "inbox_prefix": creds.inbox_prefix,
        "http_token": token,
    }


async def dashboard_credentials() -> dict[str, Any]:
    """The dashboard user: it may only subscribe to `iioe.analytics.>` (contract §8)."""
    auth = _platform()
    creds = auth.credentials(DASHBOARD_USER)
    url, _ = operator_connection()
    return {"nats_url": url, "user": creds.user, "password": creds.password, "inbox_prefix": creds.inbox_prefix}


async def revoke_partner(institution: str) -> dict[str, Any]:
    auth = _platform()
    user = partner_user(institution)
    try:
        old = auth.credentials(user)
    except KeyError:
        old = None
    removed = auth.revoke_partner(institution)
    url, operator = operator_connection()
    if old is not None:
        await _wait_until_refused(url, old.user, old.password)
    nc = await connect(url, "iioe-credentials", connect_attempts=3, auth=operator)
    try:
        tokens = await delete_grants(nc.jetstream(), actor=user)
    finally:
        await nc.close()
    return {"institution": institution, "nats_user_removed": removed, "http_tokens_revoked": tokens}


async def operator_token(name: str, scopes: list[str]) -> dict[str, Any]:
    unknown = sorted(set(scopes) - OPERATOR_SCOPES)
    if unknown:
        raise CredentialsError(f"unknown scopes {unknown}; choose from {sorted(OPERATOR_SCOPES)}")
    token = new_token()
    url, operator = operator_connection()
    nc = await connect(url, "iioe-credentials", connect_attempts=3, auth=operator)
    try:
        await put_grant(nc.jetstream(), token, TokenGrant(kind="operator", actor=name, scopes=frozenset(scopes)))
    finally:
        await nc.close()
    return {"actor": name, "scopes": sorted(scopes), "http_token": token}


async def revoke_operator_token(name: str) -> dict[str, Any]:
    url, operator = operator_connection()
    nc = await connect(url, "iioe-credentials", connect_attempts=3, auth=operator)
    try:
        return {"actor": name, "http_tokens_revoked": await delete_grants(nc.jetstream(), actor=name)}
    finally:
        await nc.close()


def _print(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<20} {value}")


def _run(args: argparse.Namespace) -> int:
    configure_logging("iioe-credentials", os.environ.get("LOG_LEVEL", "WARNING"))  # logs on stderr, never stdout
    try:
        if args.action == "partner":
            result = asyncio.run(partner_credentials(args.name))
        elif args.action == "revoke":
            result = asyncio.run(revoke_partner(args.name))
        elif args.action == "dashboard":
            result = asyncio.run(dashboard_credentials())
        elif args.action == "operator":
            result = asyncio.run(operator_token(args.name, args.scopes))
        else:
            result = asyncio.run(revoke_operator_token(args.name))
    except CredentialsError as exc:
        print(f"iioe credentials: {exc}", file=sys.stderr)
        return 2
    _print(result, args.json)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("credentials", help="partner and operator credentials (NATS users, HTTP tokens)")
    actions = p.add_subparsers(dest="action", required=True)
    partner = actions.add_parser("partner", help="create or show an institution's partner credentials")
    partner.add_argument("name", metavar="institution")
    revoke = actions.add_parser("revoke", help="end an institution's partner credentials (NATS and HTTP)")
    revoke.add_argument("name", metavar="institution")
    operator = actions.add_parser("operator", help="create an operator HTTP token with some scopes")
    operator.add_argument("name", help="who acts with it (recorded in events and the audit log)")
    operator.add_argument("--scopes", nargs="+", required=True, help=f"of {sorted(OPERATOR_SCOPES)}")
    revoke_op = actions.add_parser("revoke-operator", help="revoke every operator token of a name")
    revoke_op.add_argument("name")
    dashboard = actions.add_parser("dashboard", help="the dashboard user (subscribes to iioe.analytics.> only)")
    for parser in (partner, revoke, operator, revoke_op, dashboard):
        parser.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
