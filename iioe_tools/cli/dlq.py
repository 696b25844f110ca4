"""`iioe dlq list|show|redrive|purge`: inspect, re-drive and clear dead letters (logic in iioe.runtime.dlq)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime

from iioe.runtime.dlq import (
    RedriveRefused,
    list_dead_letters,
    purge_dead_letters,
    redrive,
    show_dead_letter,
)
from iioe.runtime.nats import connect
from iioe_tools.operator import operator_connection


async def _list(
    url: str, limit: int, as_json: bool, consumer: str | None, reason: str | None, since: datetime | None
) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        letters = await list_dead_letters(nc.jetstream(), limit=limit, consumer=consumer, reason=reason, since=since)
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


async def _show(url: str, seq: int) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        letter = await show_dead_letter(nc.jetstream(), seq)
    finally:
        await nc.close()
    print(json.dumps(letter.model_dump(), indent=2))
    return 0


async def _redrive(url: str, seqs: list[int], force: bool) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        js = nc.jetstream()
        for seq in seqs:
            try:
                letter = await redrive(js, seq, force=force)
            except RedriveRefused as exc:
                print(f"error: {exc} (use --force to re-drive anyway)", file=sys.stderr)
                return 1
            print(f"re-drove #{seq} to {letter.original_subject}")
    finally:
        await nc.close()
    return 0


async def _purge(url: str, consumer: str | None, reason: str | None, since: datetime | None) -> int:
    nats_url, auth = operator_connection(url)
    nc = await connect(nats_url, "iioe-dlq", auth=auth)
    try:
        count = await purge_dead_letters(nc.jetstream(), consumer=consumer, reason=reason, since=since)
    finally:
        await nc.close()
    print(f"purged {count} dead letter(s)")
    return 0


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--consumer", help="only letters of this durable consumer")
    p.add_argument("--reason", help="only letters with this reason code")
    p.add_argument("--since", type=datetime.fromisoformat, help="only letters failed at or after (ISO 8601)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("dlq", help="list, show, re-drive or purge dead letters in IIOE_DLQ")
    p.add_argument("--nats-url", default=None, help="default: NATS_URL, else the platform of IIOE_DATA_DIR")
    dsub = p.add_subparsers(dest="dlq_command", required=True)
    lp = dsub.add_parser("list", help="show the newest dead letters")
    lp.add_argument("--limit", type=int, default=50)
    lp.add_argument("--json", action="store_true")
    _filters(lp)
    lp.set_defaults(func=lambda a: asyncio.run(_list(a.nats_url, a.limit, a.json, a.consumer, a.reason, a.since)))
    sp = dsub.add_parser("show", help="one dead letter in full (JSON)")
    sp.add_argument("seq", type=int)
    sp.set_defaults(func=lambda a: asyncio.run(_show(a.nats_url, a.seq)))
    rp = dsub.add_parser("redrive", help="publish dead letters back to their original subjects")
    rp.add_argument("seq", type=int, nargs="+", help="IIOE_DLQ sequence numbers (from `iioe dlq list`)")
    rp.add_argument("--force", action="store_true", help="skip the check that the consumer consumes the subject")
    rp.set_defaults(func=lambda a: asyncio.run(_redrive(a.nats_url, a.seq, a.force)))
    pp = dsub.add_parser("purge", help="delete dead letters (a filter, or --all)")
    _filters(pp)
    pp.add_argument("--all", action="store_true", help="required to purge without any filter")

    def purge(a: argparse.Namespace) -> int:
        if not (a.consumer or a.reason or a.since or a.all):
            print("error: give --consumer, --reason or --since, or --all to purge every letter", file=sys.stderr)
            return 2
        return asyncio.run(_purge(a.nats_url, a.consumer, a.reason, a.since))

    pp.set_defaults(func=purge)
