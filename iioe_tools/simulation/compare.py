"""Ground truth against the analytics service: what this run added (after − before), not absolute totals.

The platform may already hold other data or an earlier run of the same seed, so the
comparison is a delta against a baseline taken before driving.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from iioe_tools.simulation.scenario import GroundTruth, Scenario

METRICS: tuple[str, ...] = (
    "educators_registered",
    "institutions_active",
    "course_completions",
    "educators_completed_programme_courses",
    "certificates_issued",
    "master_teachers",
)
INSTITUTION_METRICS: tuple[str, ...] = (
    "educators_registered",
    "course_completions",
    "educators_completed_programme_courses",
    "certificates_issued",
    "master_teachers",
)
SUMMARY_PATH = "/v1/analytics/summary"


class AnalyticsUnreachable(RuntimeError):
    """The analytics service did not answer with a summary."""


class InstitutionSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    institution: str
    educators_registered: int | None = None
    course_completions: int | None = None
    educators_completed_programme_courses: int | None = None
    certificates_issued: int | None = None
    master_teachers: int | None = None


class AnalyticsSummary(BaseModel):
    """The part of `GET /v1/analytics/summary` the simulator checks; a missing metric is a mismatch, not a crash."""

    model_config = ConfigDict(extra="allow")

    educators_registered: int | None = None
    institutions_active: int | None = None
    course_completions: int | None = None
    educators_completed_programme_courses: int | None = None
    certificates_issued: int | None = None
    master_teachers: int | None = None
    by_institution: list[InstitutionSummary] = []

    def value(self, metric: str) -> int | None:
        value: int | None = getattr(self, metric)
        return value

    def institution_value(self, code: str, metric: str) -> int | None:
        """An institution the service does not list has 0; a listed one without the field is unknown."""
        for row in self.by_institution:
            if row.institution == code:
                value: int | None = getattr(row, metric)
                return value
        return 0


class Row(BaseModel):
    metric: str
    expected: int | str
    actual: int | str | None
    before: int | None = None
    after: int | None = None
    ok: bool


class Comparison(BaseModel):
    ok: bool
    rows: list[Row]
    mismatched_institutions: dict[str, dict[str, str]] = {}
    """institution → metric → "expected≠actual" (deltas)."""


def expected_delta(scenario: Scenario, new_keys: Sequence[str], baseline: AnalyticsSummary) -> GroundTruth:
    """The ground truth of the newly registered educators; an institution only becomes active once."""
    return adjusted_to_baseline(scenario.ground_truth(set(new_keys)), baseline)


def adjusted_to_baseline(truth: GroundTruth, baseline: AnalyticsSummary) -> GroundTruth:
    """`truth` of newly registered educators as a delta: institutions active before do not become active again."""
    already_active = {r.institution for r in baseline.by_institution if (r.educators_registered or 0) > 0}
    truth.institutions_active = sum(
        1 for r in truth.by_institution if r.educators_registered and r.institution not in already_active
    )
    return truth


def _delta(before: int | None, after: int | None) -> int | None:
    return None if after is None else after - (before or 0)


def compare(expected: GroundTruth, before: AnalyticsSummary, after: AnalyticsSummary) -> Comparison:
    rows = []
    for metric in METRICS:
        want: int = getattr(expected, metric)
        got = _delta(before.value(metric), after.value(metric))
        rows.append(
            Row(
                metric=metric,
                expected=want,
                actual=got,
                before=before.value(metric),
                after=after.value(metric),
                ok=got == want,
            )
        )

    wanted = {r.institution: r for r in expected.by_institution}
    codes = set(wanted) | {r.institution for r in after.by_institution}
    mismatched: dict[str, dict[str, str]] = {}
    for metric in INSTITUTION_METRICS:
        checked = equal = 0
        for code in sorted(codes):
            want = getattr(wanted[code], metric) if code in wanted else 0
            got = _delta(before.institution_value(code, metric), after.institution_value(code, metric))
            if code not in wanted and got == 0:
                continue  # an institution this run does not touch and that did not move
            checked += 1
            if got == want:
                equal += 1
            else:
                mismatched.setdefault(code, {})[metric] = f"{want}≠{'missing' if got is None else got}"
        rows.append(
            Row(
                metric=f"by_institution.{metric}",
                expected=f"{checked} institutions",
                actual=f"{equal}/{checked} equal",
                ok=equal == checked,
            )
        )
    return Comparison(ok=all(r.ok for r in rows), rows=rows, mismatched_institutions=mismatched)


async def fetch_summary(client: httpx.AsyncClient, base_url: str) -> AnalyticsSummary:
    url = base_url.rstrip("/") + SUMMARY_PATH
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise AnalyticsUnreachable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code != 200:
        raise AnalyticsUnreachable(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    try:
        return AnalyticsSummary.model_validate_json(response.content)
    except ValidationError as exc:
        raise AnalyticsUnreachable(f"GET {url} did not return an analytics summary: {exc}") from exc


def _counts(summary: AnalyticsSummary) -> tuple[object, ...]:
    rows = sorted((r.institution, *(getattr(r, m) for m in INSTITUTION_METRICS)) for r in summary.by_institution)
    return (*(summary.value(m) for m in METRICS), tuple(rows))


async def stable_baseline(
    client: httpx.AsyncClient, base_url: str, *, quiet_for: float = 1.0, max_wait: float = 30.0
) -> AnalyticsSummary:
    """A summary that stopped moving: a service still catching up on older events would otherwise leak them
    into this run's delta. After `max_wait` the latest summary is used as it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait
    current = await fetch_summary(client, base_url)
    while loop.time() < deadline:
        await asyncio.sleep(quiet_for)
        latest = await fetch_summary(client, base_url)
        if _counts(latest) == _counts(current):
            return latest
        current = latest
    return current


async def wait_until_equal(
    client: httpx.AsyncClient,
    base_url: str,
    expected: GroundTruth,
    before: AnalyticsSummary,
    *,
    timeout: float,
    interval: float = 1.0,
    settle: float = 3.0,
    extend_on_progress: bool = False,
    extend: Callable[[Comparison, AnalyticsSummary], Awaitable[Comparison]] | None = None,
) -> tuple[Comparison, AnalyticsSummary]:
    """Poll until the delta equals the ground truth (and still does `settle` seconds later) or `timeout` passes.

    The settle check matters for a delta of 0 (a re-run), which holds before the platform has
    seen anything. `extend_on_progress`: `timeout` counts from the last change of the summary (a large
    run converges for as long as analytics keeps counting). `extend` adds rows to each poll's comparison
    (the programme figures, `compare_programme.programme_check`). Raises AnalyticsUnreachable only if no
    poll at all succeeded.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: tuple[Comparison, AnalyticsSummary] | None = None
    error: AnalyticsUnreachable | None = None
    matched_at: float | None = None
    while True:
        try:
            after = await fetch_summary(client, base_url)
            comparison = compare(expected, before, after)
            if extend is not None:
                comparison = await extend(comparison, after)
        except AnalyticsUnreachable as exc:
            error = exc
        else:
            if extend_on_progress and (last is None or _counts(after) != _counts(last[1])):
                deadline = max(deadline, loop.time() + timeout)  # still counting: `timeout` is a stall limit
            last = (comparison, after)
            if not last[0].ok:
                matched_at = None
            elif matched_at is None:
                matched_at = loop.time()
            if matched_at is not None and loop.time() - matched_at >= settle:
                return last
        now = loop.time()
        if now >= deadline:
            if last is None:
                raise error or AnalyticsUnreachable("no summary received")
            return last
        await asyncio.sleep(min(interval, max(0.0, deadline - now)))


def render_table(comparison: Comparison) -> str:
    """metric | ground truth | analytics | ok — plus the absolute values before and after."""
    header = ("metric", "ground truth (Δ)", "analytics (Δ)", "ok", "analytics before → after")
    lines = [
        (
            r.metric,
            str(r.expected),
            "missing" if r.actual is None else str(r.actual),
            "yes" if r.ok else "NO",
            "" if r.after is None and r.before is None else f"{_show(r.before)} → {_show(r.after)}",
        )
        for r in comparison.rows
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: Sequence[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()

    out = [fmt(header), "-+-".join("-" * w for w in widths)]
    out += [fmt(row) for row in lines]
    if comparison.mismatched_institutions:
        out.append("per-institution differences (ground truth Δ ≠ analytics Δ):")
    for code, metrics in sorted(comparison.mismatched_institutions.items())[:10]:
        out.append(f"  {code}: " + ", ".join(f"{m} {v}" for m, v in metrics.items()))
    if len(comparison.mismatched_institutions) > 10:
        out.append(f"  … and {len(comparison.mismatched_institutions) - 10} more institutions")
    return "\n".join(out)


def _show(value: int | None) -> str:
    return "missing" if value is None else str(value)
