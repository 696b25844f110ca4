"""`iioe simulate`: play the partner systems of the national pilot and check what analytics counted.

Exit codes: 0 analytics equals the ground truth, 1 it does not (or registrations failed),
2 the analytics service or NATS cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

import httpx
import nats.errors
from pydantic import BaseModel

from iioe.runtime.logging import configure_logging
from iioe.runtime.nats import connect
from iioe_tools.operator import operator_connection
from iioe_tools.simulation.compare import (
    AnalyticsSummary,
    AnalyticsUnreachable,
    Comparison,
    adjusted_to_baseline,
    render_table,
    stable_baseline,
    wait_until_equal,
)
from iioe_tools.simulation.compare_programme import fetch_cascade, programme_check, with_promotions
from iioe_tools.simulation.driver import DriveError, DriveOptions, DriveResult, drive_scaled
from iioe_tools.simulation.programme_activity import ProgrammeActivity, ProgrammeTruth, build_programme_activity
from iioe_tools.simulation.programme_driver import ProgrammeDriveError, ProgrammeDriveResult, drive_programme
from iioe_tools.simulation.scenario import (
    LEAD_INSTITUTION,
    LEAD_MONTHS,
    REAL_EDUCATORS,
    GroundTruth,
    ScaledScenario,
)

DEFAULT_ANALYTICS_URL = "http://127.0.0.1:8003"
EXIT_OK, EXIT_MISMATCH, EXIT_UNREACHABLE = 0, 1, 2


class MonthRanking(BaseModel):
    month: str
    registrations: int
    leaders: list[tuple[str, int]]
    lead_rank: int | None
    """Rank of MUST among institutions that month (1 = most registrations), None if it had none."""


class DryRun(BaseModel):
    seed: int
    scale: int = 1
    educators: int
    ground_truth: GroundTruth
    months: list[MonthRanking]
    duplicate_deliveries: int
    programme: ProgrammeTruth | None = None
    """Contract §10: the cascade, teaching practice and course ratings (played at scale 1)."""


class SimulationReport(BaseModel):
    """The `--json` result: everything needed to judge a run without parsing the table."""

    ok: bool
    exit_code: int
    seed: int
    scale: int = 1
    educators: int
    ground_truth: GroundTruth
    expected_delta: GroundTruth
    drive: dict[str, Any]
    comparison: Comparison
    before: AnalyticsSummary
    after: AnalyticsSummary
    converge_seconds: float
    programme_expected_delta: ProgrammeTruth | None = None
    programme_drive: dict[str, Any] | None = None


def month_rankings(scenario: ScaledScenario) -> list[MonthRanking]:
    out = []
    for month, counts in scenario.monthly_registrations().items():
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        rank = next((i for i, (code, _) in enumerate(ranked, start=1) if code == LEAD_INSTITUTION), None)
        out.append(MonthRanking(month=month, registrations=sum(counts.values()), leaders=ranked[:3], lead_rank=rank))
    return out


def programme_of(scenario: ScaledScenario) -> ProgrammeActivity | None:
    """The programme's activity (cascade, portfolio, practice, ratings) is played on an unscaled run."""
    return build_programme_activity(scenario.shard(0)) if scenario.scale == 1 else None


def _dry_run(scenario: ScaledScenario, as_json: bool) -> int:
    activity = programme_of(scenario)
    programme = activity.ground_truth() if activity is not None else None
    truth = scenario.ground_truth()
    if programme is not None:
        truth = with_promotions(truth, programme)
    _, duplicates = scenario.totals()
    report = DryRun(
        seed=scenario.seed,
        scale=scenario.scale,
        educators=scenario.total_educators,
        ground_truth=truth,
        months=month_rankings(scenario),
        duplicate_deliveries=duplicates,
        programme=programme,
    )
    if as_json:
        print(report.model_dump_json(indent=2))
        return EXIT_OK
    scale = f", scale {scenario.scale}" if scenario.scale > 1 else ""
    print(f"scenario seed {scenario.seed}{scale}: ground truth on an empty platform")
    for metric, value in truth.model_dump(exclude={"by_institution"}).items():
        print(f"  {metric:<40} {value:>6,}")
    print(f"  {'duplicate deliveries (must not count)':<40} {duplicates:>6,}")
    print("\nregistrations per institution (top 10):")
    for row in truth.by_institution[:10]:
        print(
            f"  {row.institution:<10} {row.educators_registered:>5} registered,"
            f" {row.course_completions:>5} completions,"
            f" {row.educators_completed_programme_courses:>5} all courses, {row.certificates_issued:>4} certified,"
            f" {row.master_teachers:>2} master teachers"
        )
    print("\nnew registrations per month:")
    lead_months = {f"{y}-{m:02d}" for y, m in LEAD_MONTHS}
    for m in report.months:
        leaders = ", ".join(f"{code} {n}" for code, n in m.leaders)
        mark = f"  ← {LEAD_INSTITUTION} rank {m.lead_rank}" if m.month in lead_months else ""
        print(f"  {m.month}  {m.registrations:>5}  ({leaders}){mark}")
    if programme is not None:
        _print_programme(programme)
    return EXIT_OK


def _print_programme(programme: ProgrammeTruth) -> None:
    print(f"\nthe programme (contract §10); {programme.promoted} of the master teachers above are promoted trainees:")
    for metric, value in programme.model_dump(exclude={"cascade", "cascade_totals", "promoted_by_institution"}).items():
        print(f"  {metric:<40} {value:>6,}")
    print("  cascade per master teacher (sessions / trainees / completed / certified / second generation):")
    for m in sorted(programme.cascade, key=lambda m: (-m.trainees, m.educator_key))[:10]:
        print(
            f"    {m.educator_key:<14} {m.institution:<10} {m.sessions:>3} {m.trainees:>5} {m.trainees_completed:>5}"
            f" {m.trainees_certified:>5} {m.second_generation_reach:>5}"
        )


def _progress_bars(enabled: bool) -> tuple[Callable[[str, int], None], Callable[[], None], dict[str, int]]:
    """One tqdm bar per phase, created lazily; `totals` is filled in before driving."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}
    totals: dict[str, int] = {}
    labels = {"register": "registering", "publish": "publishing", "promote": "promoting", "programme": "programme"}

    def update(phase: str, n: int) -> None:
        if not enabled:
            return
        if phase not in bars:  # bars stay open: a scaled run alternates the phases shard by shard
            bars[phase] = tqdm(
                total=totals.get(phase),
                desc=labels.get(phase, phase),
                unit="msg",
                file=sys.stderr,
                position=len(bars),
            )
        bars[phase].update(n)

    def close() -> None:
        for bar in bars.values():
            bar.close()

    return update, close, totals


async def run_simulation(args: argparse.Namespace, http: httpx.AsyncClient | None = None) -> int:
    """The whole run; tests pass `http` (e.g. an ASGI client of an in-process analytics service)."""
    async with contextlib.AsyncExitStack() as stack:
        if http is None:
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=10.0))
        return await _run(args, http)


async def _run(args: argparse.Namespace, http: httpx.AsyncClient) -> int:
    scenario = ScaledScenario(args.seed, args.educators, getattr(args, "scale", 1))
    activity = programme_of(scenario)
    truth = scenario.ground_truth()
    if activity is not None:
        truth = with_promotions(truth, activity.ground_truth())
    say: Callable[[str], None] = (lambda _m: None) if args.json else (lambda m: print(m, flush=True))
    n_events, n_duplicates = scenario.totals()
    scale = f" ×{scenario.scale} (shards of {scenario.educators:,})" if scenario.scale > 1 else ""
    say(
        f"iioe simulate: seed {scenario.seed}{scale}, {truth.educators_registered:,} educators at "
        f"{truth.institutions_active} institutions, {n_events:,} course completions "
        f"(+{n_duplicates} duplicate deliveries)"
        + (
            f"; then {len(activity.promotions)} promotions and {activity.event_count():,} programme events"
            f" (+{len(activity.duplicate_event_ids)} duplicates)"
            if activity is not None
            else ""
        )
    )

    try:
        before = await stable_baseline(http, args.analytics_url)
    except AnalyticsUnreachable as exc:
        print(
            f"error: the analytics service at {args.analytics_url} is unreachable ({exc}).\n"
            "Start the platform (`iioe up`) or point --analytics-url / IIOE_ANALYTICS_URL at it; "
            "nothing was sent.",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    try:
        cascade_before = await fetch_cascade(http, args.analytics_url) if activity is not None else None
    except AnalyticsUnreachable as exc:
        print(f"error: the analytics service stopped answering ({exc}); nothing was sent.", file=sys.stderr)
        return EXIT_UNREACHABLE
    say(
        f"analytics baseline: {before.educators_registered or 0:,} educators, "
        f"{before.course_completions or 0:,} completions, {before.certificates_issued or 0:,} certificates"
    )

    try:
        nats_url, auth = operator_connection(args.nats_url)
        nc = await connect(nats_url, "iioe-simulate", connect_attempts=3, auth=auth)
    except (OSError, nats.errors.NoServersError, TimeoutError, nats.errors.Error) as exc:
        print(f"error: NATS at {nats_url} is unreachable ({exc!r}); nothing was sent.", file=sys.stderr)
        return EXIT_UNREACHABLE
    update, close, totals = _progress_bars(not args.quiet and not args.json and sys.stderr.isatty())
    totals.update(register=scenario.total_educators, publish=n_events + n_duplicates)
    if activity is not None:
        totals.update(promote=len(activity.promotions), programme=activity.event_count())
    programme: ProgrammeDriveResult | None = None
    try:
        driven = await drive_scaled(scenario, nc, DriveOptions(concurrency=args.concurrency), progress=update)
        if activity is not None:
            programme = await drive_programme(activity, nc, driven.result.educator_ids, progress=update)
    except (DriveError, ProgrammeDriveError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    finally:
        close()
        await nc.close()
    result = driven.result
    _say_drive(say, result)
    if programme is not None:
        _say_programme(say, programme)

    expected = adjusted_to_baseline(driven.new_truth, before)
    programme_expected: ProgrammeTruth | None = None
    check = None
    if activity is not None:
        programme_expected = activity.ground_truth(set(result.new_keys))
        expected = with_promotions(expected, programme_expected)
        check = programme_check(
            http, args.analytics_url, programme_expected, result.educator_ids, before, cascade_before
        )
    if not result.new_keys and not result.failures:
        say(
            f"all {scenario.total_educators:,} educators were already registered by an earlier run of seed "
            f"{scenario.seed}: their events were counted then, so the expected delta is 0 everywhere"
        )
    say(f"waiting up to {args.timeout:g} s for analytics to count it …")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        comparison, after = await wait_until_equal(
            http,
            args.analytics_url,
            expected,
            before,
            timeout=args.timeout,
            settle=args.settle,
            extend_on_progress=scenario.scale > 1,
            extend=check,
        )
    except AnalyticsUnreachable as exc:
        print(f"error: the analytics service stopped answering ({exc})", file=sys.stderr)
        return EXIT_UNREACHABLE
    converge = round(loop.time() - started, 1)

    promotion_failures = programme.promotion_failures if programme is not None else []
    ok = comparison.ok and not result.failures and not promotion_failures
    code = EXIT_OK if ok else EXIT_MISMATCH
    if args.json:
        report = SimulationReport(
            ok=ok,
            exit_code=code,
            seed=scenario.seed,
            scale=scenario.scale,
            educators=scenario.total_educators,
            ground_truth=truth,
            expected_delta=expected,
            drive=result.model_dump(exclude={"educator_ids", "new_keys"}) | {"new_registrations": len(result.new_keys)},
            comparison=comparison,
            before=before,
            after=after,
            converge_seconds=converge,
            programme_expected_delta=programme_expected,
            programme_drive=programme.model_dump() if programme is not None else None,
        )
        print(report.model_dump_json(indent=2))
        return code
    print()
    print(render_table(comparison))
    print()
    if ok:
        print(f"OK: analytics matches the ground truth ({converge:g} s after the last event was sent)")
    elif result.failures or promotion_failures:
        print(
            f"FAILED: {len(result.failures)} registrations and {len(promotion_failures)} role changes "
            "were rejected; see above"
        )
    else:
        print(f"MISMATCH: analytics still differs from the ground truth after {args.timeout:g} s")
    return code


def _say_drive(say: Callable[[str], None], result: DriveResult) -> None:
    say(
        f"registered {len(result.new_keys):,} new, {result.already_registered:,} already registered"
        f"{' (earlier run of this seed)' if result.already_registered else ''}, {len(result.failures)} failed "
        f"in {result.registration_seconds:.1f} s"
    )
    if result.registered_after_retry:
        say(f"  {result.registered_after_retry} replied already_registered after a timed-out try; counted as new")
    for failure in result.failures[:10]:
        say(f"  rejected {failure.educator_key} at {failure.institution}: {failure.code}: {failure.message}")
    say(
        f"published {result.events_published:,} CourseCompleted events + {result.duplicates_sent} duplicate "
        f"deliveries ({result.duplicates_dropped} dropped by JetStream) in {result.publish_seconds:.1f} s"
    )


def _say_programme(say: Callable[[str], None], programme: ProgrammeDriveResult) -> None:
    say(
        f"promoted {programme.promotions_changed} trainees to master teacher ({programme.promotions_unchanged} "
        f"already were), {len(programme.promotion_failures)} failed; published {programme.events_published:,} "
        f"programme events + {programme.duplicates_sent} duplicate deliveries "
        f"({programme.duplicates_dropped} dropped by JetStream) in {programme.seconds:.1f} s"
    )
    for failure in programme.promotion_failures[:10]:
        say(f"  change_role {failure.educator_key} at {failure.institution}: {failure.code}: {failure.message}")


def _main(args: argparse.Namespace) -> int:
    if args.educators < 1 or args.scale < 1:
        print("error: --educators and --scale must be at least 1", file=sys.stderr)
        return EXIT_MISMATCH
    configure_logging("iioe-simulate", "WARNING")
    if args.dry_run:
        return _dry_run(ScaledScenario(args.seed, args.educators, args.scale), args.json)
    return asyncio.run(run_simulation(args))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "simulate",
        help="play the pilot's partner systems against the platform and check analytics",
        description=(
            "Register the national pilot's educators and publish their course completions through the "
            "public NATS interfaces, then wait until the analytics summary grows by exactly the ground truth."
        ),
    )
    p.add_argument("--nats-url", default=None, help="default: NATS_URL, else the platform of IIOE_DATA_DIR")
    p.add_argument("--analytics-url", default=os.environ.get("IIOE_ANALYTICS_URL", DEFAULT_ANALYTICS_URL))
    p.add_argument("--seed", type=int, default=2025, help="same seed, same scenario (a re-run adds nothing)")
    p.add_argument(
        "--educators",
        type=int,
        default=REAL_EDUCATORS,
        help=f"pilot size; every count scales in proportion (default: the real {REAL_EDUCATORS:,})",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=1,
        help="run SCALE independent pilots of --educators each, shard by shard in bounded memory "
        "(--scale 100: ≈205,000 educators, ≈600,000 completions)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for analytics to converge (with --scale > 1: seconds without any progress)",
    )
    p.add_argument("--settle", type=float, default=3.0, help="seconds a match must hold before it counts")
    p.add_argument("--concurrency", type=int, default=32, help="registration requests in flight")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="only print the scenario's ground truth")
    p.set_defaults(func=_main)
