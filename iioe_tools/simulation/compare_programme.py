"""The programme figures (contract §10) against the analytics service, as deltas like the rest.

Adds rows to the comparison table: the summary's `training_sessions`, `trainees_reached`,
`educators_integrating_ai`, `course_ratings`, `courses_rated_highly`; per master teacher of this
run the `GET /v1/analytics/cascade` figures; and the cascade totals. `master_teachers` stays the
scenario's row, grown by the promotions (`with_promotions`). A figure the service does not report
(an older analytics service, or no cascade endpoint) is "missing": a mismatch, never a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from iioe_tools.simulation.compare import AnalyticsSummary, AnalyticsUnreachable, Comparison, Row
from iioe_tools.simulation.programme_activity import (
    CASCADE_METRICS,
    CASCADE_TOTALS,
    SUMMARY_METRICS,
    ProgrammeTruth,
)
from iioe_tools.simulation.scenario import GroundTruth

CASCADE_PATH = "/v1/analytics/cascade"


class CascadeEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    educator_id: str
    institution: str | None = None
    sessions: int | None = None
    trainees: int | None = None
    trainees_completed: int | None = None
    trainees_certified: int | None = None
    second_generation_reach: int | None = None


class CascadeTotals(BaseModel):
    model_config = ConfigDict(extra="allow")

    sessions: int | None = None
    trainees: int | None = None
    trainees_certified: int | None = None


class CascadeReport(BaseModel):
    """The part of `GET /v1/analytics/cascade` the simulator checks."""

    model_config = ConfigDict(extra="allow")

    master_teachers: list[CascadeEntry] = []
    totals: CascadeTotals = CascadeTotals()

    def entry(self, educator_id: str) -> CascadeEntry | None:
        return next((m for m in self.master_teachers if m.educator_id == educator_id), None)


def with_promotions(truth: GroundTruth, programme: ProgrammeTruth) -> GroundTruth:
    """The scenario's ground truth with the promoted master teachers counted (total and per institution)."""
    out = truth.model_copy(deep=True)
    out.master_teachers += programme.promoted
    for row in out.by_institution:
        row.master_teachers += programme.promoted_by_institution.get(row.institution, 0)
    return out


def summary_value(summary: AnalyticsSummary, metric: str) -> int | None:
    """A §10 figure of the summary (an extra field of the model), None when absent or not an integer."""
    value = (summary.model_extra or {}).get(metric)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _delta(before: int | None, after: int | None) -> int | None:
    return None if after is None else after - (before or 0)


def programme_rows(
    expected: ProgrammeTruth,
    educator_ids: Mapping[str, str],
    before: AnalyticsSummary,
    after: AnalyticsSummary,
    cascade_before: CascadeReport | None,
    cascade_after: CascadeReport | None,
) -> list[Row]:
    """One row per §10 summary figure, per cascade figure (over this run's master teachers) and per total."""
    rows = []
    for metric in SUMMARY_METRICS:
        want: int = getattr(expected, metric)
        b, a = summary_value(before, metric), summary_value(after, metric)
        got = _delta(b, a)
        rows.append(Row(metric=metric, expected=want, actual=got, before=b, after=a, ok=got == want))

    masters = [(m, educator_ids[m.educator_key]) for m in expected.cascade if m.educator_key in educator_ids]
    listed = 0
    for m, educator_id in masters:
        entry = cascade_after.entry(educator_id) if cascade_after else None
        listed += entry is not None and entry.institution == m.institution
    rows.append(
        Row(
            metric="cascade.master_teachers",
            expected=f"{len(masters)} listed",
            actual=None if cascade_after is None else f"{listed}/{len(masters)} listed",
            ok=cascade_after is not None and listed == len(masters),
        )
    )
    for metric in CASCADE_METRICS:
        equal = 0
        differences = []
        for m, educator_id in masters:
            old = cascade_before.entry(educator_id) if cascade_before else None
            new = cascade_after.entry(educator_id) if cascade_after else None
            b_value = getattr(old, metric) if old else 0
            a_value = getattr(new, metric) if new else (None if cascade_after is None else 0)
            got = _delta(b_value, a_value)
            if got == getattr(m, metric):
                equal += 1
            else:
                differences.append(f"{educator_id} {getattr(m, metric)}≠{'missing' if got is None else got}")
        shown = f"{equal}/{len(masters)} equal" + (f" ({'; '.join(differences[:2])})" if differences else "")
        rows.append(
            Row(
                metric=f"cascade.{metric}",
                expected=f"{len(masters)} master teachers",
                actual=None if cascade_after is None else shown,
                ok=cascade_after is not None and equal == len(masters),
            )
        )
    for metric in CASCADE_TOTALS:
        want = getattr(expected.cascade_totals, metric)
        b = getattr(cascade_before.totals, metric) if cascade_before else None
        a = getattr(cascade_after.totals, metric) if cascade_after else None
        got = _delta(b, a)
        row = Row(metric=f"cascade.totals.{metric}", expected=want, actual=got, before=b, after=a, ok=got == want)
        rows.append(row)
    return rows


def extended(comparison: Comparison, rows: list[Row]) -> Comparison:
    all_rows = [*comparison.rows, *rows]
    return comparison.model_copy(update={"rows": all_rows, "ok": all(r.ok for r in all_rows)})


async def fetch_cascade(client: httpx.AsyncClient, base_url: str) -> CascadeReport | None:
    """The cascade report; None when the service has no such endpoint (404) or answers something else."""
    url = base_url.rstrip("/") + CASCADE_PATH
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        raise AnalyticsUnreachable(f"GET {url} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 500:
        raise AnalyticsUnreachable(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    if response.status_code != 200:
        return None
    try:
        return CascadeReport.model_validate_json(response.content)
    except ValidationError:
        return None


def programme_check(
    client: httpx.AsyncClient,
    base_url: str,
    expected: ProgrammeTruth,
    educator_ids: Mapping[str, str],
    before: AnalyticsSummary,
    cascade_before: CascadeReport | None,
) -> Callable[[Comparison, AnalyticsSummary], Awaitable[Comparison]]:
    """The hook `wait_until_equal` calls on every poll: the programme rows added to the comparison."""

    async def check(comparison: Comparison, after: AnalyticsSummary) -> Comparison:
        cascade_after = await fetch_cascade(client, base_url)
        rows = programme_rows(expected, educator_ids, before, after, cascade_before, cascade_after)
        return extended(comparison, rows)

    return check
