"""Reading the projections into the output models (the read-side application service).

Each report reads one consistent snapshot through the `ProjectionReader` port (PostgreSQL:
`store_reads.PgProjectionReader`; unit tests: the in-memory fake), so its numbers always add up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from iioe.reference import Institution
from services.analytics.domain import ProjectionRules
from services.analytics.models import (
    Cascade,
    CascadeDetail,
    CascadeMasterTeacher,
    CascadeReach,
    CascadeTotals,
    CourseFeedback,
    CourseLanguageReport,
    CourseStats,
    CreditsRecognized,
    DatedReport,
    Feedback,
    Funnel,
    FunnelRates,
    InstitutionDetail,
    InstitutionPractice,
    InstitutionStats,
    ModeReach,
    MonthStats,
    Practice,
    PracticeStats,
    ProgrammeReport,
    ProgrammeStats,
    Ranking,
    Rankings,
    ReceivingInstitutionStats,
    Recognition,
    RegionReach,
    RegionReport,
    ReportCounts,
    ReportGroup,
    Summary,
    TierReport,
    Timeseries,
    TransferStats,
)


class ProjectionQueries(Protocol):
    """The counting queries, inside one snapshot (shapes as in `domain.ProjectionState`)."""

    async def institution_counts(self, institution: str | None = None) -> dict[str, dict[str, int]]: ...
    async def course_counts(self, institution: str | None = None) -> list[dict[str, Any]]: ...
    async def programme_counts(self) -> list[dict[str, Any]]: ...
    async def recognition_totals(self) -> tuple[int, float]: ...
    async def monthly(self, institution: str | None = None) -> dict[str, dict[str, int]]: ...
    async def registrations_in_month(self, month: str) -> list[tuple[str, int]]: ...
    async def has_institution(self, code: str) -> bool: ...
    async def cascade(self) -> list[dict[str, Any]]: ...
    async def cascade_totals(self) -> dict[str, int]: ...
    async def cascade_breakdown(self, educator_id: str) -> dict[str, list[dict[str, Any]]]: ...
    async def transfer_counts(self) -> list[dict[str, Any]]: ...
    async def practice_counts(self) -> dict[str, dict[str, int]]: ...
    async def feedback_counts(self) -> list[dict[str, Any]]: ...
    async def as_of_groups(self, cutoff: datetime, day: date, programme_id: str) -> list[dict[str, Any]]: ...
    async def as_of_credits(self, cutoff: datetime) -> dict[str, dict[str, Any]]: ...
    async def as_of_course_languages(self, cutoff: datetime) -> dict[str, dict[str, int]]: ...
    async def as_of_regions(self, day: date) -> dict[str, dict[str, int]]: ...
    async def as_of_programmes(self, cutoff: datetime) -> dict[str, int]: ...
    async def as_of_cascade(self, day: date) -> dict[str, int]: ...


class ProjectionReader(Protocol):
    def snapshot(self) -> AbstractAsyncContextManager[ProjectionQueries]:
        """A consistent, read-only view of the projections."""


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _funnel(registered: int, started: int, completed: int, certified: int) -> Funnel:
    return Funnel(
        registered=registered,
        started=started,
        completed=completed,
        certified=certified,
        rates=FunnelRates(
            started=_rate(started, registered),
            completed=_rate(completed, registered),
            certified=_rate(certified, registered),
        ),
    )


def _months(
    by_month: Mapping[str, Mapping[str, int]], first: str | None = None, last: str | None = None
) -> list[MonthStats]:
    """Every month from the first to the last with data (or from `first` to `last`), gaps filled with
    zeros (charts need them)."""
    if first is None or last is None:
        if not by_month:
            return []
        first, last = first or min(by_month), last or max(by_month)
    if first > last:
        return []
    year, month = int(first[:4]), int(first[5:7])
    out: list[MonthStats] = []
    while True:
        key = f"{year:04d}-{month:02d}"
        values = by_month.get(key, {})
        out.append(
            MonthStats(
                month=key,
                registrations=values.get("registrations", 0),
                course_completions=values.get("course_completions", 0),
                programme_completions=values.get("programme_completions", 0),
                certificates_issued=values.get("certificates_issued", 0),
                certificates_revoked=values.get("certificates_revoked", 0),
            )
        )
        if key >= last:
            return out
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class Reports:
    """Summary, per-institution detail, rankings and time series from the projection tables."""

    def __init__(
        self,
        reader: ProjectionReader,
        institutions: Mapping[str, Institution],
        rules: ProjectionRules,
        programme_tiers: Mapping[str, str] | None = None,
    ) -> None:
        self._reader = reader
        self._institutions = institutions
        self.rules = rules
        self._tiers = programme_tiers or {}

    def name_of(self, code: str) -> str | None:
        inst = self._institutions.get(code)
        return inst.name_en if inst else None

    def _stats(self, code: str, c: Mapping[str, int]) -> InstitutionStats:
        inst = self._institutions.get(code)
        return InstitutionStats(
            institution=code,
            name=self.name_of(code),
            name_mn=inst.name_in("mn") if inst else None,
            name_ru=inst.name_in("ru") if inst else None,
            educators_registered=c.get("registered", 0),
            course_completions=c.get("completions", 0),
            educators_completed_programme_courses=c.get("completed_programme", 0),
            certificates_issued=c.get("certificates_active", 0),
            certificates_revoked=c.get("certificates_revoked", 0),
            master_teachers=c.get("master_teachers", 0),
            educators_started=c.get("funnel_started", 0),
            educators_certified=c.get("funnel_certified", 0),
            certificates_suspended=c.get("certificates_suspended", 0),
            training_sessions=c.get("training_sessions", 0),
            trainees_reached=c.get("trainees_reached", 0),
            educators_integrating_ai=c.get("integrating_ai", 0),
            course_ratings=c.get("course_ratings", 0),
            courses_rated_highly=c.get("courses_rated_highly", 0),
        )

    async def summary(self) -> Summary:
        async with self._reader.snapshot() as q:
            counts = await q.institution_counts()
            courses = await q.course_counts()
            programmes = await q.programme_counts()
            recognitions, credits = await q.recognition_totals()
        by_institution = [self._stats(code, counts[code]) for code in sorted(counts)]
        by_institution.sort(key=lambda s: (-s.educators_registered, s.institution))

        def total(key: str) -> int:
            return sum(c.get(key, 0) for c in counts.values())

        return Summary(
            educators_registered=total("registered"),
            institutions_active=sum(1 for c in counts.values() if c.get("registered", 0) > 0),
            course_completions=total("completions"),
            educators_completed_programme_courses=total("completed_programme"),
            certificates_issued=total("certificates_active"),
            certificates_revoked=total("certificates_revoked"),
            master_teachers=total("master_teachers"),
            certificates_suspended=total("certificates_suspended"),
            training_sessions=total("training_sessions"),
            trainees_reached=total("trainees_reached"),
            educators_integrating_ai=total("integrating_ai"),
            course_ratings=total("course_ratings"),
            courses_rated_highly=total("courses_rated_highly"),
            funnel=_funnel(
                total("registered"), total("funnel_started"), total("funnel_completed"), total("funnel_certified")
            ),
            by_institution=by_institution,
            by_course=[CourseStats(**c) for c in courses],
            by_programme=[
                ProgrammeStats(
                    programme_id=p["programme_id"],
                    certificates_issued=p["active"],
                    certificates_revoked=p["revoked"],
                    credits_issued=float(p["credits"]),
                )
                for p in programmes
            ],
            credits_recognized=CreditsRecognized(recognitions=recognitions, credits=credits),
            programme_id=self.rules.programme_id,
            programme_courses=list(self.rules.programme_courses),
            generated_at=datetime.now(UTC),
        )

    async def institution(self, code: str) -> InstitutionDetail | None:
        """One institution's numbers; None when it is neither in the catalogue nor in any event."""
        async with self._reader.snapshot() as q:
            if code not in self._institutions and not await q.has_institution(code):
                return None
            counts = (await q.institution_counts(code)).get(code, {})
            courses = await q.course_counts(code)
            by_month = await q.monthly(code)
        stats = self._stats(code, counts)
        return InstitutionDetail(
            **stats.model_dump(),
            funnel=_funnel(
                counts.get("registered", 0),
                counts.get("funnel_started", 0),
                counts.get("funnel_completed", 0),
                counts.get("funnel_certified", 0),
            ),
            by_course=[CourseStats(**c) for c in courses],
            months=_months(by_month),
            generated_at=datetime.now(UTC),
        )

    async def rankings(self, month: str) -> Rankings:
        """Standard competition ranking (1, 2, 2, 4) by registrations in `month`."""
        async with self._reader.snapshot() as q:
            rows = await q.registrations_in_month(month)
        ranked: list[Ranking] = []
        for position, (code, n) in enumerate(rows, start=1):
            rank = ranked[-1].rank if ranked and ranked[-1].registrations == n else position
            ranked.append(Ranking(rank=rank, institution=code, name=self.name_of(code), registrations=n))
        return Rankings(month=month, rankings=ranked)

    async def timeseries(
        self, institution: str | None = None, first: str | None = None, last: str | None = None
    ) -> Timeseries:
        """Months from the first to the latest with data; `first` / `last` ('YYYY-MM') choose a range."""
        async with self._reader.snapshot() as q:
            by_month = await q.monthly(institution)
        return Timeseries(months=_months(by_month, first, last))

    async def cascade(self) -> Cascade:
        async with self._reader.snapshot() as q:
            rows = await q.cascade()
            totals = await q.cascade_totals()
        return Cascade(master_teachers=[CascadeMasterTeacher(**r) for r in rows], totals=CascadeTotals(**totals))

    async def cascade_of(self, educator_id: str) -> CascadeDetail | None:
        """One master teacher's reach by region and mode; None when not a master teacher (nor a session holder)."""
        async with self._reader.snapshot() as q:
            row = next((r for r in await q.cascade() if r["educator_id"] == educator_id), None)
            if row is None:
                return None
            breakdown = await q.cascade_breakdown(educator_id)
        return CascadeDetail(
            **row,
            by_region=[RegionReach(**r) for r in breakdown["by_region"]],
            by_mode=[ModeReach(**r) for r in breakdown["by_mode"]],
        )

    async def recognition(self) -> Recognition:
        async with self._reader.snapshot() as q:
            rows = await q.transfer_counts()
            recognitions, credits = await q.recognition_totals()

        keys = ("requests", "pending", "accepted", "rejected", "credits")

        def stats(c: Mapping[str, Any]) -> dict[str, Any]:
            out = {k: c[k] for k in keys}
            out["credits"] = float(c["credits"])
            out["acceptance_rate"] = _rate(c["accepted"], c["accepted"] + c["rejected"])
            return out

        by_receiving = [
            ReceivingInstitutionStats(
                institution=r["receiving_institution"], name=self.name_of(r["receiving_institution"]), **stats(r)
            )
            for r in rows
        ]
        totals = stats({k: sum(r[k] for r in rows) for k in keys})
        return Recognition(
            transfers=TransferStats(**totals),
            by_receiving_institution=by_receiving,
            credits_recognized=CreditsRecognized(recognitions=recognitions, credits=credits),
            generated_at=datetime.now(UTC),
        )

    async def practice(self) -> Practice:
        async with self._reader.snapshot() as q:
            counts = await q.practice_counts()

        def stats(c: Mapping[str, int]) -> dict[str, Any]:
            return {
                "completed_programme": c["completed"],
                "reported": c["reported"],
                "integrating_ai": c["integrating"],
                "completed_and_integrating": c["completed_integrating"],
                "share_of_completed": _rate(c["completed_integrating"], c["completed"]),
            }

        keys = ("completed", "reported", "integrating", "completed_integrating")
        overall = {k: sum(c[k] for c in counts.values()) for k in keys}
        return Practice(
            overall=PracticeStats(**stats(overall)),
            by_institution=[
                InstitutionPractice(institution=code, name=self.name_of(code), **stats(counts[code]))
                for code in sorted(counts)
            ],
            generated_at=datetime.now(UTC),
        )

    async def feedback(self) -> Feedback:
        async with self._reader.snapshot() as q:
            rows = await q.feedback_counts()
        ratings, highly = sum(r["ratings"] for r in rows), sum(r["rated_highly"] for r in rows)
        return Feedback(
            ratings=ratings,
            rated_highly=highly,
            share_highly=_rate(highly, ratings),
            by_course=[
                CourseFeedback(
                    course_id=r["course_id"],
                    language=r["language"],
                    ratings=r["ratings"],
                    rated_highly=r["rated_highly"],
                    share_highly=_rate(r["rated_highly"], r["ratings"]),
                    mean_content=round(r["content_sum"] / r["ratings"], 2),
                    mean_usefulness=round(r["usefulness_sum"] / r["ratings"], 2),
                )
                for r in rows
            ],
            generated_at=datetime.now(UTC),
        )

    def cutoff_of(self, as_of: date) -> datetime:
        """The end of `as_of` in the reporting time zone (the next local midnight), as an instant."""
        return datetime.combine(as_of + timedelta(days=1), time(0), tzinfo=ZoneInfo(self.rules.month_timezone))

    async def dated_report(self, as_of: date, language: str = "en") -> DatedReport:
        """Registered, completed, certified, master teachers, credits, cascade reach and practice
        integration as of the end of `as_of`, with breakdowns (institution, type, city, language, region)."""
        cutoff = self.cutoff_of(as_of)
        async with self._reader.snapshot() as q:
            groups = await q.as_of_groups(cutoff, as_of, self.rules.programme_id)
            credits = await q.as_of_credits(cutoff)
            regions = await q.as_of_regions(as_of)
            course_languages = await q.as_of_course_languages(cutoff)
            programmes = await q.as_of_programmes(cutoff)
            cascade = await q.as_of_cascade(as_of)
        keys = (
            "registered",
            "completed",
            "certified",
            "master_teachers",
            "integrating_ai",
            "completed_integrating",
            "trainees",
        )

        def fold(key_of: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for g in groups:
                row = out.setdefault(key_of(g), dict.fromkeys(keys, 0))
                for k in keys:
                    row[k] += g[k]
            return out

        def counts(c: Mapping[str, Any], credit: float | None) -> dict[str, Any]:
            return {
                "registered": c["registered"],
                "completed_programme": c["completed"],
                "certified": c["certified"],
                "master_teachers": c["master_teachers"],
                "credits_recognised": credit,
                "trainees_reached": c["trainees"],
                "integrating_ai": c["integrating_ai"],
                "completed_and_integrating": c["completed_integrating"],
                "practice_share": _rate(c["completed_integrating"], c["completed"]),
            }

        def credit_of(codes: list[str]) -> float:
            return float(sum(credits.get(code, {}).get("credits", 0.0) for code in codes))

        by_inst = fold(lambda g: str(g["institution"]))
        for code in credits:
            by_inst.setdefault(code, dict.fromkeys(keys, 0))

        def attribute(field: str) -> Callable[[str], str]:
            def of(code: str) -> str:
                inst = self._institutions.get(code)
                return str(getattr(inst, field)) if inst else "unknown"

            return of

        def grouped(key_of: Callable[[str], str]) -> list[ReportGroup]:
            members: dict[str, list[str]] = {}
            for code in by_inst:
                members.setdefault(key_of(code), []).append(code)
            out = []
            for key in sorted(members):
                summed = {k: sum(by_inst[code][k] for code in members[key]) for k in keys}
                out.append(ReportGroup(key=key, **counts(summed, credit_of(members[key]))))
            return out

        institutions = [
            ReportGroup(key=code, name=self.name_in(code, language), **counts(c, credit_of([code])))
            for code, c in by_inst.items()
        ]
        institutions.sort(key=lambda g: (-g.registered, g.key))
        totals = {k: sum(c[k] for c in by_inst.values()) for k in keys}
        return DatedReport(
            as_of=as_of,
            cutoff=cutoff,
            timezone=self.rules.month_timezone,
            totals=ReportCounts(**counts(totals, credit_of(list(by_inst)))),
            cascade=CascadeReach(**cascade),
            by_institution=institutions,
            by_type=grouped(attribute("type")),
            by_city=grouped(attribute("city")),
            by_language=[
                ReportGroup(key=key, **counts(c, None))
                for key, c in sorted(fold(lambda g: str(g["language"] or "unknown")).items())
            ],
            by_region=[RegionReport(region=k, **v) for k, v in sorted(regions.items())],
            by_programme=[
                ProgrammeReport(programme_id=k, certificates_active=v) for k, v in sorted(programmes.items())
            ],
            by_tier=self._by_tier(programmes),
            by_course_language=[CourseLanguageReport(language=k, **v) for k, v in sorted(course_languages.items())],
            generated_at=datetime.now(UTC),
        )

    def _by_tier(self, programmes: Mapping[str, int]) -> list[TierReport]:
        tiers: dict[str, int] = {}
        for programme_id, n in programmes.items():
            tier = self._tiers.get(programme_id, "unknown")
            tiers[tier] = tiers.get(tier, 0) + n
        return [TierReport(tier=k, certificates_active=n) for k, n in sorted(tiers.items())]

    def name_in(self, code: str, language: str) -> str | None:
        inst = self._institutions.get(code)
        return inst.name_in(language) if inst else None
