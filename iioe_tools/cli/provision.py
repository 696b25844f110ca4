"""`iioe provision`: declare the streams on a NATS server (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import os

from iioe.runtime.nats import connect, provision_streams
from iioe.runtime.settings import DEFAULT_NATS_URL


async def provision(url: str, contacts_max_age_days: float = 30) -> list[str]:
    nc = await connect(url, "iioe-provision")
    try:
        return await provision_streams(nc.jetstream(), contacts_max_age_days)
    finally:
        await nc.close()


def _run(args: argparse.Namespace) -> int:
    names = asyncio.run(provision(args.nats_url, args.contacts_max_age_days))
    print("streams ready:", ", ".join(names))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("provision", help="create or update the JetStream streams")
    p.add_argument("--nats-url", default=os.environ.get("NATS_URL", DEFAULT_NATS_URL))
    p.add_argument(
        "--contacts-max-age-days", type=float, default=float(os.environ.get("IIOE_CONTACTS_MAX_AGE_DAYS", 30))
    )
    p.set_defaults(func=_run)
