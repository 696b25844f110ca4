"""`iioe provision`: declare the streams and the token bucket on a NATS server (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import os

from iioe.runtime.nats import connect, provision_streams
from iioe.runtime.settings import NatsAuthOptions
from iioe.runtime.tokens import OPERATOR_SCOPES, TokenGrant, put_grant, token_bucket
from iioe_tools.operator import operator_connection


async def provision(
    url: str,
    contacts_max_age_days: float = 30,
    *,
    auth: NatsAuthOptions | None = None,
    operator_token: str | None = None,
) -> list[str]:
    """Streams and the HTTP token bucket; `operator_token` is registered with every operator scope."""
    nc = await connect(url, "iioe-provision", auth=auth)
    try:
        js = nc.jetstream()
        names = await provision_streams(js, contacts_max_age_days)
        await token_bucket(js, create=True)
        if operator_token:
            await put_grant(js, operator_token, TokenGrant(kind="operator", actor="operator", scopes=OPERATOR_SCOPES))
        return names
    finally:
        await nc.close()


def _run(args: argparse.Namespace) -> int:
    url, auth = operator_connection(args.nats_url)
    names = asyncio.run(provision(url, args.contacts_max_age_days, auth=auth))
    print("streams ready:", ", ".join(names))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("provision", help="create or update the JetStream streams")
    p.add_argument("--nats-url", default=None, help="default: NATS_URL, else the platform of IIOE_DATA_DIR")
    p.add_argument(
        "--contacts-max-age-days", type=float, default=float(os.environ.get("IIOE_CONTACTS_MAX_AGE_DAYS", 30))
    )
    p.set_defaults(func=_run)
