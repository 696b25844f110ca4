"""`iioe dlq list|redrive`: inspect and re-drive dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json

from iioe.runtime.dlq import list_dead_letters, redrive
from iioe.runtime.nats import connect
from iioe_tools.operator import operator_connection


async def _list(url: str, limit: int, as_json: bool) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        letters = await list_dead_letters(nc.jetstream(), limit=limit)
    finally:
        await nc.close()
    if as_json:
        print(json.dumps([letter.model_dump() for letter in letters], indent=2))
        return 0
    if not letters:
        print("no dead letters")
    for letter in letters:
        print(
            f"#{letter.seq} {letter.failed_at} consumer={letter.consumer} reason={letter.reason}\n"
            f"    subject={letter.original_subject} detail={letter.detail}\n    data={letter.data_preview!r}"
        )
    return 0


async def _redrive(url: str, seqs: list[int]) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        js = nc.jetstream()
        for seq in seqs:
            letter = await redrive(js, seq)
            print(f"re-drove #{seq} to {letter.original_subject}")
    finally:
        await nc.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("dlq", help="list or re-drive dead letters in IIOE_DLQ")
    p.add_argument("--nats-url", default=None, help="default: NATS_URL, else the platform of IIOE_DATA_DIR")
    dsub = p.add_subparsers(dest="dlq_command", required=True)
    lp = dsub.add_parser("list", help="show the newest dead letters")
    lp.add_argument("--limit", type=int, default=50)
    lp.add_argument("--json", action="store_true")
    lp.set_defaults(func=lambda a: asyncio.run(_list(a.nats_url, a.limit, a.json)))
    rp = dsub.add_parser("redrive", help="publish dead letters back to their original subjects")
    rp.add_argument("seq", type=int, nargs="+", help="IIOE_DLQ sequence numbers (from `iioe dlq list`)")
    rp.set_defaults(func=lambda a: asyncio.run(_redrive(a.nats_url, a.seq)))
