"""The programme activity's records, by educator key, and the contract §10 figures they must produce.

`programme_activity.py` generates them from a `Scenario`; `programme_driver.py` sends them and
`compare_programme.py` checks the platform's figures against `ProgrammeActivity.ground_truth`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import BaseModel

from iioe.events.cascade import SessionMode
from iioe.events.common import Language
from iioe.events.portfolio import EntryKind

# --- the events, by educator key (the platform's educator ids are only known when driving) ---------


@dataclass(frozen=True)
class TrainingSession:
    session_id: str
    event_id: str
    master_teacher: str
    institution: str
    """The master teacher's institution (the session is published on its subject)."""
    region: str
    mode: SessionMode
    held_on: date
    language: Language
    generation: int
    """1: held by a master teacher of the pilot; 2: by a promoted trainee."""


@dataclass(frozen=True)
class Attendance:
    event_id: str
    session_id: str
    trainee: str
    institution: str
    """The trainee's institution (the event is published on its subject)."""
    held_on: date


@dataclass(frozen=True)
class PortfolioItem:
    event_id: str
    entry_id: str
    educator: str
    institution: str
    kind: EntryKind
    title: str
    link: str | None
    added_on: date


@dataclass(frozen=True)
class PracticeReport:
    event_id: str
    educator: str
    institution: str
    integrates_ai: bool
    disciplines: tuple[str, ...] | None
    reported_on: date
    order: int
    """0 for an educator's first report, 1 for a later one (published after every first report)."""


@dataclass(frozen=True)
class CourseRating:
    event_id: str
    educator: str
    institution: str
    course_id: str
    language: Language
    content_rating: int
    usefulness_rating: int
    evaluated_at: datetime

    @property
    def rated_highly(self) -> bool:
        return self.content_rating >= 4 and self.usefulness_rating >= 4


@dataclass(frozen=True)
class Profile:
    """What the programme figures need to know about one simulated educator."""

    key: str
    institution: str
    language: Language
    role: str
    completed_all: bool
    certified: bool
    completions: Mapping[str, datetime]
    """course → first completion time."""

    @property
    def last_activity(self) -> datetime | None:
        return max(self.completions.values(), default=None)


# --- ground truth ----------------------------------------------------------------------------------


class CascadeTruth(BaseModel):
    """One master teacher's row of `GET /v1/analytics/cascade` (contract §10), by scenario key."""

    educator_key: str
    institution: str
    sessions: int
    trainees: int
    trainees_completed: int
    trainees_certified: int
    second_generation_reach: int


class CascadeTotalsTruth(BaseModel):
    sessions: int
    trainees: int
    """Distinct educators who attended any session."""
    trainees_certified: int


class ProgrammeTruth(BaseModel):
    """The contract §10 figures these events must produce (plus what is sent but not counted)."""

    promoted: int
    """Master teachers added by `change_role` (the summary's `master_teachers` grows by these)."""
    promoted_by_institution: dict[str, int]
    training_sessions: int
    trainees_reached: int
    educators_integrating_ai: int
    course_ratings: int
    courses_rated_highly: int
    portfolio_entries: int
    practice_reports: int
    cascade: list[CascadeTruth]
    cascade_totals: CascadeTotalsTruth


SUMMARY_METRICS: tuple[str, ...] = (
    "training_sessions",
    "trainees_reached",
    "educators_integrating_ai",
    "course_ratings",
    "courses_rated_highly",
)
"""The contract §10 summary fields checked besides `master_teachers` (which the scenario already has)."""
CASCADE_METRICS: tuple[str, ...] = (
    "sessions",
    "trainees",
    "trainees_completed",
    "trainees_certified",
    "second_generation_reach",
)
CASCADE_TOTALS: tuple[str, ...] = ("sessions", "trainees", "trainees_certified")


@dataclass(frozen=True)
class ProgrammeActivity:
    seed: int
    profiles: Mapping[str, Profile]
    promotions: tuple[str, ...]
    """Keys of the trainees promoted to master teacher, in command order."""
    sessions: tuple[TrainingSession, ...]
    attendances: tuple[Attendance, ...]
    portfolio: tuple[PortfolioItem, ...]
    practice: tuple[PracticeReport, ...]
    ratings: tuple[CourseRating, ...]
    duplicate_event_ids: tuple[str, ...] = ()

    def event_count(self) -> int:
        return sum(map(len, (self.sessions, self.attendances, self.portfolio, self.practice, self.ratings)))

    def master_teachers(self) -> list[str]:
        """Pilot master teachers, then the promoted ones."""
        return [k for k, p in self.profiles.items() if p.role == "master_teacher"] + list(self.promotions)

    def ground_truth(self, keys: Collection[str] | None = None) -> ProgrammeTruth:
        """Counts over every educator, or only over the events whose educators are all in `keys`
        (the ones a run newly registered: an earlier run of the seed already sent the others)."""

        def ours(*people: str) -> bool:
            return keys is None or all(p in keys for p in people)

        sessions = {s.session_id: s for s in self.sessions if ours(s.master_teacher)}
        attended = [a for a in self.attendances if a.session_id in sessions and ours(a.trainee)]
        promoted = [k for k in self.promotions if ours(k)]
        trainees_of: dict[str, set[str]] = defaultdict(set)
        for a in attended:
            trainees_of[sessions[a.session_id].master_teacher].add(a.trainee)
        sessions_of: dict[str, int] = defaultdict(int)
        for s in sessions.values():
            sessions_of[s.master_teacher] += 1
        masters = set(promoted) | {k for k, p in self.profiles.items() if p.role == "master_teacher" and ours(k)}

        cascade = []
        for m in self.master_teachers():
            if m not in masters:
                continue
            trainees = trainees_of[m] - {m}
            second: set[str] = set()
            for t in trainees & masters:
                second |= trainees_of[t]
            cascade.append(
                CascadeTruth(
                    educator_key=m,
                    institution=self.profiles[m].institution,
                    sessions=sessions_of[m],
                    trainees=len(trainees),
                    trainees_completed=sum(self.profiles[t].completed_all for t in trainees),
                    trainees_certified=sum(self.profiles[t].certified for t in trainees),
                    second_generation_reach=len(second - {m}),
                )
            )
        reached = {a.trainee for a in attended}

        latest: dict[str, PracticeReport] = {}
        for r in self.practice:
            if ours(r.educator) and (r.educator not in latest or r.reported_on > latest[r.educator].reported_on):
                latest[r.educator] = r
        ratings = [r for r in self.ratings if ours(r.educator)]
        by_institution: dict[str, int] = defaultdict(int)
        for k in promoted:
            by_institution[self.profiles[k].institution] += 1
        return ProgrammeTruth(
            promoted=len(promoted),
            promoted_by_institution=dict(sorted(by_institution.items())),
            training_sessions=len(sessions),
            trainees_reached=len(reached),
            educators_integrating_ai=sum(r.integrates_ai for r in latest.values()),
            course_ratings=len(ratings),
            courses_rated_highly=sum(r.rated_highly for r in ratings),
            portfolio_entries=sum(1 for p in self.portfolio if ours(p.educator)),
            practice_reports=sum(1 for r in self.practice if ours(r.educator)),
            cascade=cascade,
            cascade_totals=CascadeTotalsTruth(
                sessions=len(sessions),
                trainees=len(reached),
                trainees_certified=sum(self.profiles[t].certified for t in reached),
            ),
        )
