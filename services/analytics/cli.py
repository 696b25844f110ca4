"""`iioe analytics rebuild`: replay IIOE_EVENTS into fresh projections and swap them in."""

from __future__ import annotations

import argparse
import asyncio
import sys

from iioe.runtime.logging import configure_logging
from services.analytics.rebuild import RebuildError, rebuild
from services.analytics.settings import AnalyticsSettings


def _run_rebuild(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.nats_url:
        overrides["NATS_URL"] = args.nats_url
    if args.database_url:
        overrides["DATABASE_URL"] = args.database_url
    if args.schema:
        overrides["db_schema"] = args.schema
    settings = AnalyticsSettings(**overrides)  # type: ignore[arg-type]
    configure_logging("analytics-rebuild", settings.log_level, settings.log_json)
    try:
        result = asyncio.run(
            rebuild(settings, batch_size=args.batch_size, progress=not args.no_progress, keep_old=args.keep_old)
        )
    except RebuildError as exc:
        print(f"rebuild refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"rebuilt schema {result.schema!r} from {result.events_read} events up to stream sequence {result.last_seq}: "
        f"{result.events_applied} applied, {result.duplicates} duplicate ids skipped, {result.invalid} invalid "
        f"skipped, in {result.seconds:.1f}s ({result.events_per_second:,.0f} events/s)"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("analytics", help="operate the analytics projections")
    asub = p.add_subparsers(dest="analytics_command", required=True)
    rp = asub.add_parser(
        "rebuild",
        help="replay IIOE_EVENTS from the start into fresh projections, then swap them in atomically",
        description="Safe while the analytics service runs: it pauses only for the final swap.",
    )
    rp.add_argument("--nats-url", default=None, help="default: NATS_URL or nats://127.0.0.1:4222")
    rp.add_argument("--database-url", default=None, help="default: DATABASE_URL")
    rp.add_argument("--schema", default=None, help="projection schema (default: IIOE_ANALYTICS_DB_SCHEMA or analytics)")
    rp.add_argument("--batch-size", type=int, default=5000, help="events per fetch and per transaction")
    rp.add_argument("--keep-old", action="store_true", help="keep the previous projections as <schema>_old_<ts>")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.set_defaults(func=_run_rebuild)
