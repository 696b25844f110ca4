"""The programme as it ran after the courses: the cascade, teaching practice and course ratings.

Built from a `Scenario` with a random stream of its own (seeded from the scenario's seed and
size), so adding it changes nothing in the registrations and completions the scenario already
plays, and the same seed gives the same sessions, trainees, reports and ratings.

- **Cascade.** The pilot's master teachers (role `master_teacher` at registration) hold regional
  training sessions in real aimags and Ulaanbaatar districts; educators attend them, mostly from
  the master teacher's own institution, some from others. A few certified trainees are promoted
  to master teacher (the `change_role` command) and train others in turn: the second generation.
  Master teachers never attend a session themselves, and nobody attends their own session.
- **Practice.** About 30 % of the educators who completed all three courses end with a practice
  report saying they integrate AI; other completers report that they do not. Some educators report
  twice, and the latest report (a later `reported_on`) is the one that counts.
  Portfolio entries come mostly from those integrating AI.
- **Ratings.** One evaluation per educator and completed course (for most of them), over 90 % of
  them rated highly (content and usefulness both ≥ 4).

`ProgrammeActivity.ground_truth(keys)` gives the contract §10 figures over these events alone.

The records and their ground truth are in `programme_records.py` (re-exported here).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from iioe.events.cascade import SessionMode
from iioe.events.common import Language
from iioe.events.portfolio import EntryKind
from iioe.reference import load_institutions
from iioe_tools.simulation.programme_records import (
    CASCADE_METRICS,
    CASCADE_TOTALS,
    SUMMARY_METRICS,
    Attendance,
    CascadeTotalsTruth,
    CascadeTruth,
    CourseRating,
    PortfolioItem,
    PracticeReport,
    Profile,
    ProgrammeActivity,
    ProgrammeTruth,
    TrainingSession,
)
from iioe_tools.simulation.scenario import COURSES, ULAANBAATAR, Scenario, scaled

REAL_PROMOTED = 6
"""Trainees of the first master teachers who became master teachers themselves (full-size pilot)."""
INTEGRATING_SHARE = (3, 10)
"""Completers whose latest practice report says they integrate AI: 30 % (round half up)."""
LOW_RATING_SHARE = (7, 100)
"""At most 7 % of the evaluations are not rated highly, so always more than 90 % are."""
RATING_SHARE = 0.75
"""Chance that an educator evaluates a course they completed."""
REAL_DUPLICATES = 10
"""Programme events the simulated partners deliver twice."""

AIMAGS: tuple[str, ...] = (
    "Arkhangai", "Bayan-Ölgii", "Bayankhongor", "Bulgan", "Darkhan-Uul", "Dornod", "Dornogovi",
    "Dundgovi", "Govi-Altai", "Govisümber", "Khentii", "Khovd", "Khövsgöl", "Ömnögovi", "Orkhon",
    "Övörkhangai", "Selenge", "Sükhbaatar", "Töv", "Uvs", "Zavkhan",
)  # fmt: skip
"""The 21 aimags (provinces) of Mongolia."""
UB_DISTRICTS: tuple[str, ...] = (
    "Baganuur", "Bagakhangai", "Bayangol", "Bayanzürkh", "Chingeltei", "Khan-Uul", "Nalaikh",
    "Songinokhairkhan", "Sükhbaatar",
)  # fmt: skip
"""The 9 districts (düüreg) of Ulaanbaatar."""
_CITY_AIMAG = {"Khovd": "Khovd", "Choibalsan": "Dornod", "Darkhan": "Darkhan-Uul", "Erdenet": "Orkhon"}
REGIONS: frozenset[str] = frozenset(
    [f"{a} aimag" for a in AIMAGS] + [f"{d} district, Ulaanbaatar" for d in UB_DISTRICTS]
)

_MODES: tuple[SessionMode, ...] = ("online", "face_to_face", "hybrid")
_MODE_WEIGHTS = (0.35, 0.45, 0.20)
_KINDS: tuple[EntryKind, ...] = ("lesson_plan", "syllabus_change", "teaching_artefact", "reflection")
_KIND_WEIGHTS = (0.40, 0.20, 0.25, 0.15)
DISCIPLINES: tuple[str, ...] = (
    "mathematics", "physics", "chemistry", "biology", "computer science", "engineering", "medicine",
    "nursing", "economics", "business", "law", "education", "Mongolian language", "English language",
    "history", "agriculture", "geology and mining",
)  # fmt: skip
_TITLES: dict[EntryKind, tuple[str, ...]] = {
    "lesson_plan": ("Lesson plan: prompting exercises in {d}", "Lesson plan: AI-assisted problem solving in {d}"),
    "syllabus_change": ("Syllabus change: generative AI policy for {d}", "Syllabus change: AI literacy unit in {d}"),
    "teaching_artefact": ("Assessment rubric for AI-assisted work in {d}", "Worked examples generated with AI, {d}"),
    "reflection": ("Reflection: one semester of teaching {d} with AI", "Reflection: what my {d} students asked AI"),
}
_NAMESPACE = uuid.UUID("5d0c1f7e-3b52-5a8e-8f0b-6c2d9e41a7b3")
_FIRST_SESSION_DAY = date(2025, 7, 1)
"""Regional training started after the pilot's registration window."""

__all__ = [
    "AIMAGS",
    "CASCADE_METRICS",
    "CASCADE_TOTALS",
    "DISCIPLINES",
    "INTEGRATING_SHARE",
    "LOW_RATING_SHARE",
    "RATING_SHARE",
    "REAL_DUPLICATES",
    "REAL_PROMOTED",
    "REGIONS",
    "SUMMARY_METRICS",
    "UB_DISTRICTS",
    "Attendance",
    "CascadeTotalsTruth",
    "CascadeTruth",
    "CourseRating",
    "PortfolioItem",
    "PracticeReport",
    "Profile",
    "ProgrammeActivity",
    "ProgrammeTruth",
    "TrainingSession",
    "build_programme_activity",
    "profiles_of",
]


# --- generation ------------------------------------------------------------------------------------


def profiles_of(scenario: Scenario) -> dict[str, Profile]:
    """The one place that reads the scenario's educators."""
    out = {}
    for e in scenario.educators:
        firsts: dict[str, datetime] = {}
        for a in e.attempts:
            firsts.setdefault(a.course_id, a.completed_at)
        out[e.key] = Profile(e.key, e.institution, e.language, e.role, e.completed_all, e.certified, firsts)
    return out


def build_programme_activity(scenario: Scenario) -> ProgrammeActivity:
    """Everything after the courses, deterministic for the scenario's seed and size."""
    profiles = profiles_of(scenario)
    n = len(profiles)
    rng = random.Random(f"iioe-programme/{scenario.seed}/{n}")
    ids = _Ids(scenario.seed)
    homes = _home_regions(rng, sorted({p.institution for p in profiles.values()}))

    originals = [k for k, p in profiles.items() if p.role == "master_teacher"]
    pool = [k for k, p in profiles.items() if p.role != "master_teacher"]
    sessions: list[TrainingSession] = []
    attendances: list[Attendance] = []
    for m in originals:
        start = _not_before(profiles[m], _FIRST_SESSION_DAY + timedelta(days=rng.randint(0, 60)))
        for s in _sessions(rng, ids, profiles[m], homes, generation=1, count=rng.randint(3, 7), start=start):
            sessions.append(s)
            attendances += _attend(rng, ids, s, profiles, pool, size=rng.randint(8, 24))

    first_trainees = sorted({a.trainee for a in attendances})
    candidates = [k for k in first_trainees if profiles[k].certified]
    n_promoted = min(len(candidates), max(1, scaled(REAL_PROMOTED, n))) if originals else 0
    promotions = tuple(rng.sample(candidates, n_promoted))
    last_attended: dict[str, date] = {}
    for a in attendances:
        last_attended[a.trainee] = max(a.held_on, last_attended.get(a.trainee, a.held_on))
    second_pool = [k for k in pool if k not in set(promotions)]
    for p in promotions:
        start = _not_before(profiles[p], last_attended[p] + timedelta(days=rng.randint(14, 45)))
        for s in _sessions(rng, ids, profiles[p], homes, generation=2, count=rng.randint(1, 3), start=start):
            sessions.append(s)
            attendances += _attend(rng, ids, s, profiles, second_pool, size=rng.randint(6, 16))

    practice, portfolio = _practice_and_portfolio(rng, ids, profiles)
    ratings = _ratings(rng, ids, profiles)
    all_ids = [
        e.event_id for group in (sessions, attendances, portfolio, practice, ratings) for e in group
    ]  # every kind may be delivered twice
    n_dup = min(len(all_ids), max(1, scaled(REAL_DUPLICATES, n))) if all_ids else 0
    return ProgrammeActivity(
        seed=scenario.seed,
        profiles=profiles,
        promotions=promotions,
        sessions=tuple(sorted(sessions, key=lambda s: (s.held_on, s.session_id))),
        attendances=tuple(attendances),
        portfolio=tuple(portfolio),
        practice=tuple(practice),
        ratings=tuple(ratings),
        duplicate_event_ids=tuple(sorted(rng.sample(all_ids, n_dup))),
    )


class _Ids:
    """Deterministic ids: the same seed re-sends the same events, so JetStream and the inboxes drop them."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, kind: str, *parts: object) -> str:
        return f"sim-{uuid.uuid5(_NAMESPACE, '/'.join(map(str, (self.seed, kind, *parts))))}"


def _home_regions(rng: random.Random, institutions: Sequence[str]) -> dict[str, str]:
    """Each institution's own region: its aimag outside the capital, else an Ulaanbaatar district."""
    catalogue = load_institutions()
    out = {}
    for code in institutions:
        city = catalogue[code].city if code in catalogue else "Ulaanbaatar"
        district = rng.choice(UB_DISTRICTS)
        out[code] = f"{_CITY_AIMAG[city]} aimag" if city in _CITY_AIMAG else f"{district} district, Ulaanbaatar"
    return out


def _not_before(profile: Profile, day: date) -> date:
    """A master teacher trains only after finishing their own courses."""
    last = profile.last_activity
    return max(day, last.date() + timedelta(days=7)) if last else day


def _sessions(
    rng: random.Random,
    ids: _Ids,
    teacher: Profile,
    homes: Mapping[str, str],
    *,
    generation: int,
    count: int,
    start: date,
) -> Iterable[TrainingSession]:
    """Sessions some weeks apart; online ones count for the home region, the others travel to aimags."""
    day = start
    for i in range(count):
        mode = rng.choices(_MODES, _MODE_WEIGHTS)[0]
        travels = mode != "online" and rng.random() < 0.6
        region = f"{rng.choice(AIMAGS)} aimag" if travels else homes[teacher.institution]
        language: Language = teacher.language if rng.random() < 0.8 else "mn"
        session_id = ids("session", teacher.key, i)
        yield TrainingSession(
            session_id=session_id,
            event_id=ids("training_session_held", session_id),
            master_teacher=teacher.key,
            institution=teacher.institution,
            region=region,
            mode=mode,
            held_on=day,
            language=language,
            generation=generation,
        )
        day += timedelta(days=rng.randint(5, 25))


def _attend(
    rng: random.Random,
    ids: _Ids,
    session: TrainingSession,
    profiles: Mapping[str, Profile],
    pool: Sequence[str],
    *,
    size: int,
) -> list[Attendance]:
    """Mostly colleagues of the master teacher's own institution, the others from anywhere."""
    local = [k for k in pool if profiles[k].institution == session.institution and k != session.master_teacher]
    anywhere = [k for k in pool if k != session.master_teacher]
    chosen: dict[str, None] = {}
    for _ in range(min(size, len(anywhere)) * 3):
        if len(chosen) >= min(size, len(anywhere)):
            break
        source = local if local and rng.random() < 0.6 else anywhere
        chosen.setdefault(rng.choice(source))
    return [
        Attendance(
            event_id=ids("trainee_attended", session.session_id, k),
            session_id=session.session_id,
            trainee=k,
            institution=profiles[k].institution,
            held_on=session.held_on,
        )
        for k in chosen
    ]


def _practice_and_portfolio(
    rng: random.Random, ids: _Ids, profiles: Mapping[str, Profile]
) -> tuple[list[PracticeReport], list[PortfolioItem]]:
    completers = [k for k, p in profiles.items() if p.completed_all]
    num, den = INTEGRATING_SHARE
    integrating = set(rng.sample(completers, (2 * num * len(completers) + den) // (2 * den)))
    reports: list[PracticeReport] = []
    entries: list[PortfolioItem] = []
    for k in completers:
        p = profiles[k]
        if k not in integrating and rng.random() >= 0.5:
            continue  # half of the others never report
        last = p.last_activity
        assert last is not None  # a completer has completions
        first_day = last.date() + timedelta(days=rng.randint(30, 120))
        disciplines = tuple(rng.sample(DISCIPLINES, rng.randint(1, 2))) if rng.random() < 0.8 else None
        final = k in integrating
        history = [final]
        if rng.random() < (0.25 if final else 0.2):
            history = [not final, final]  # changed their mind: only the later report counts
        day = first_day
        for order, value in enumerate(history):
            reports.append(
                PracticeReport(
                    event_id=ids("practice_integration_reported", k, order),
                    educator=k,
                    institution=p.institution,
                    integrates_ai=value,
                    disciplines=disciplines,
                    reported_on=day,
                    order=order,
                )
            )
            day += timedelta(days=rng.randint(30, 150))
        n_entries = rng.randint(1, 4) if final else int(rng.random() < 0.3)
        subject = (disciplines or ("their subject",))[0]
        for i in range(n_entries):
            kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0] if final else "reflection"
            entry_id = ids("entry", k, i)
            entries.append(
                PortfolioItem(
                    event_id=ids("portfolio_entry_added", entry_id),
                    entry_id=entry_id,
                    educator=k,
                    institution=p.institution,
                    kind=kind,
                    title=rng.choice(_TITLES[kind]).format(d=subject),
                    link=f"https://lms.{p.institution}.edu.mn/portfolio/{entry_id}" if rng.random() < 0.6 else None,
                    added_on=first_day + timedelta(days=rng.randint(-20, 90)),
                )
            )
    return reports, entries


def _ratings(rng: random.Random, ids: _Ids, profiles: Mapping[str, Profile]) -> list[CourseRating]:
    """One evaluation per educator and completed course (for most), some hours after the completion."""
    rated = [
        (p, course, at)
        for p in profiles.values()
        for course in COURSES
        if (at := p.completions.get(course)) is not None and rng.random() < RATING_SHARE
    ]
    num, den = LOW_RATING_SHARE
    low = set(rng.sample(range(len(rated)), num * len(rated) // den))
    out = []
    for i, (p, course, at) in enumerate(rated):
        if i in low:
            weak = rng.choice((1, 2, 3, 3, 3))
            other = rng.randint(2, 5)
            content, usefulness = (weak, other) if rng.random() < 0.5 else (other, weak)
        else:
            content, usefulness = rng.choices((4, 5), (0.35, 0.65), k=2)
        out.append(
            CourseRating(
                event_id=ids("course_evaluated", p.key, course),
                educator=p.key,
                institution=p.institution,
                course_id=course,
                language=p.language,
                content_rating=content,
                usefulness_rating=usefulness,
                evaluated_at=(at + timedelta(hours=rng.randint(1, 48))).astimezone(ULAANBAATAR),
            )
        )
    return out
