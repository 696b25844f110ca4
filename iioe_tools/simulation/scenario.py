"""The national pilot as data: who registered where and when, and every course attempt.

Pure and deterministic for a given seed, so a re-run replays byte-identical commands and
events (the platform must answer with "already registered" and deduplicate), and the
ground truth is computed from the same data the driver sends — never from the platform.
"""

from __future__ import annotations

import calendar
import hashlib
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from functools import cached_property

from pydantic import BaseModel

from iioe.events.common import Language, Role
from iioe.reference import AI_PROGRAMME_ID, load_institutions, load_programmes
from iioe_tools.simulation.names import GIVEN_NAMES, PATRONYMICS, latin

# --- the real pilot (MUST, 2025) -------------------------------------------------------------
REAL_EDUCATORS = 2054
REAL_COMPLETED_ALL = 1698
REAL_CERTIFIED = 580
REAL_MASTER_TEACHERS = 22
REAL_DUPLICATES = 25
"""Events the simulated LMSs deliver twice (at-least-once delivery on their side)."""

_PROGRAMME = load_programmes()[AI_PROGRAMME_ID]
PROGRAMME_ID = _PROGRAMME.id
COURSES: tuple[str, ...] = _PROGRAMME.course_ids
MIN_SCORE = int(_PROGRAMME.min_score)
LEAD_INSTITUTION = "must"
ULAANBAATAR = timezone(timedelta(hours=8))
MONTHS: tuple[tuple[int, int], ...] = ((2025, 2), (2025, 3), (2025, 4), (2025, 5), (2025, 6))
LEAD_MONTHS: tuple[tuple[int, int], ...] = ((2025, 3), (2025, 4))
"""MUST ran the national campaign and led new registrations in these months."""

_MONTH_WEIGHTS = (0.12, 0.26, 0.28, 0.22, 0.12)
_LEAD_MONTH_WEIGHTS = (0.05, 0.45, 0.40, 0.07, 0.03)
_LANGUAGES: tuple[Language, ...] = ("mn", "en", "ru")
_LANGUAGE_WEIGHTS = (0.86, 0.08, 0.06)
_EVENT_NAMESPACE = uuid.UUID("0b6f6a52-6a1e-5c1e-9d3c-2f5e8a7c4d11")


def scaled(real: int, educators: int) -> int:
    """`real` scaled to a pilot of `educators` people (round half up), so all counts keep their proportions."""
    return (2 * real * educators + REAL_EDUCATORS) // (2 * REAL_EDUCATORS)


@dataclass(frozen=True)
class Attempt:
    """One finished course attempt: exactly one CourseCompleted event."""

    course_id: str
    attempt: int
    score: int
    completed_at: datetime
    event_id: str


@dataclass(frozen=True)
class SimEducator:
    key: str
    """Stable within a seed; the CloudEvent ids derive from it (the platform's educator_id is only known later)."""
    institution: str
    full_name: str
    email: str
    language: Language
    role: Role
    registered_at: datetime
    attempts: tuple[Attempt, ...] = ()

    def best_scores(self) -> dict[str, int]:
        return best_scores(self.attempts)

    @property
    def completed_all(self) -> bool:
        return set(COURSES) <= self.best_scores().keys()

    @property
    def certified(self) -> bool:
        return is_certified(self.attempts)

    def registration_body(self) -> dict[str, str]:
        """The register_educator command body of contract section 4."""
        return {
            "full_name": self.full_name,
            "email": self.email,
            "language": self.language,
            "role": self.role,
            "registered_at": self.registered_at.isoformat(),
        }


def best_scores(attempts: Sequence[Attempt]) -> dict[str, int]:
    """Best score per course: a later, worse retake never takes a pass away."""
    best: dict[str, int] = {}
    for a in attempts:
        best[a.course_id] = max(best.get(a.course_id, a.score), a.score)
    return best


def is_certified(attempts: Sequence[Attempt]) -> bool:
    """The programme rule: all three courses with a best score of at least 80."""
    best = best_scores(attempts)
    return all(best.get(course, -1) >= MIN_SCORE for course in COURSES)


def event_id_for(seed: int, educator_key: str, course_id: str, attempt: int) -> str:
    """Deterministic CourseCompleted id: the same seed re-sends the same ids, so JetStream and inboxes drop them."""
    return f"sim-{uuid.uuid5(_EVENT_NAMESPACE, f'{seed}/{educator_key}/{course_id}/{attempt}')}"


class InstitutionTruth(BaseModel):
    institution: str
    educators_registered: int = 0
    course_completions: int = 0
    educators_completed_programme_courses: int = 0
    certificates_issued: int = 0
    master_teachers: int = 0


class GroundTruth(BaseModel):
    """What the analytics service must count for a set of simulated educators (section 7 of the contract)."""

    educators_registered: int
    institutions_active: int
    course_completions: int
    educators_completed_programme_courses: int
    certificates_issued: int
    master_teachers: int
    by_institution: list[InstitutionTruth]


@dataclass(frozen=True)
class Scenario:
    seed: int
    educators: tuple[SimEducator, ...]
    duplicate_event_ids: tuple[str, ...] = field(default=())

    @cached_property
    def by_key(self) -> dict[str, SimEducator]:
        return {e.key: e for e in self.educators}

    def events(self) -> Iterator[tuple[SimEducator, Attempt]]:
        """Every course attempt in the order the LMSs report them (by completion time)."""
        pairs = [(e, a) for e in self.educators for a in e.attempts]
        yield from sorted(pairs, key=lambda p: (p[1].completed_at, p[1].event_id))

    def ground_truth(self, keys: Collection[str] | None = None) -> GroundTruth:
        """Counts over all educators, or only over `keys` (the ones a run newly registered)."""
        chosen = self.educators if keys is None else tuple(e for e in self.educators if e.key in keys)
        per: dict[str, InstitutionTruth] = {}
        for e in chosen:
            row = per.setdefault(e.institution, InstitutionTruth(institution=e.institution))
            row.educators_registered += 1
            row.course_completions += len({a.event_id for a in e.attempts})
            row.educators_completed_programme_courses += e.completed_all
            row.certificates_issued += e.certified
            row.master_teachers += e.role == "master_teacher"
        rows = sorted(per.values(), key=lambda r: (-r.educators_registered, r.institution))
        return GroundTruth(
            educators_registered=sum(r.educators_registered for r in rows),
            institutions_active=sum(1 for r in rows if r.educators_registered),
            course_completions=sum(r.course_completions for r in rows),
            educators_completed_programme_courses=sum(r.educators_completed_programme_courses for r in rows),
            certificates_issued=sum(r.certificates_issued for r in rows),
            master_teachers=sum(r.master_teachers for r in rows),
            by_institution=rows,
        )

    def monthly_registrations(self) -> dict[str, Counter[str]]:
        """Registrations per month ("2025-03") per institution."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for e in self.educators:
            out[f"{e.registered_at:%Y-%m}"][e.institution] += 1
        return dict(sorted(out.items()))


def merge_truths(truths: Iterable[GroundTruth]) -> GroundTruth:
    """The ground truth of the union of disjoint sets of educators (e.g. the shards of a scaled run)."""
    per: dict[str, InstitutionTruth] = {}
    for truth in truths:
        for row in truth.by_institution:
            into = per.setdefault(row.institution, InstitutionTruth(institution=row.institution))
            for metric in _INSTITUTION_COUNTS:
                setattr(into, metric, getattr(into, metric) + getattr(row, metric))
    rows = sorted(per.values(), key=lambda r: (-r.educators_registered, r.institution))
    return GroundTruth(
        institutions_active=sum(1 for r in rows if r.educators_registered),
        by_institution=rows,
        **{metric: sum(getattr(r, metric) for r in rows) for metric in _INSTITUTION_COUNTS},
    )


_INSTITUTION_COUNTS = (
    "educators_registered",
    "course_completions",
    "educators_completed_programme_courses",
    "certificates_issued",
    "master_teachers",
)


@dataclass(frozen=True)
class ScaledScenario:
    """`scale` independent pilots of `educators` people each (`iioe simulate --scale`), built one shard at a
    time so a run of 100× the pilot never holds more than one shard in memory. Every shard has the pilot's
    exact proportions, so the whole has them too; shard 0 is the unscaled scenario of `seed`."""

    seed: int = 2025
    educators: int = REAL_EDUCATORS
    scale: int = 1

    def __post_init__(self) -> None:
        if self.scale < 1:
            raise ValueError("scale must be at least 1")

    @property
    def total_educators(self) -> int:
        return self.educators * self.scale

    def shard(self, k: int) -> Scenario:
        return build_scenario(self.seed, self.educators, shard=k)

    def shards(self) -> Iterator[Scenario]:
        for k in range(self.scale):
            yield self.shard(k)

    def ground_truth(self) -> GroundTruth:
        return merge_truths(s.ground_truth() for s in self.shards())

    def totals(self) -> tuple[int, int]:
        """(course completion events, duplicate deliveries) over all shards."""
        events = duplicates = 0
        for s in self.shards():
            events += sum(len(e.attempts) for e in s.educators)
            duplicates += len(s.duplicate_event_ids)
        return events, duplicates

    def monthly_registrations(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for s in self.shards():
            for month, counts in s.monthly_registrations().items():
                out[month].update(counts)
        return dict(sorted(out.items()))


# --- generation ------------------------------------------------------------------------------


def shard_seed(seed: int, shard: int) -> int:
    """The random seed of shard `shard` of a scaled scenario; shard 0 is the unscaled scenario itself."""
    return seed if shard == 0 else int.from_bytes(hashlib.sha256(f"{seed}/shard/{shard}".encode()).digest()[:8])


def build_scenario(
    seed: int = 2025, educators: int = REAL_EDUCATORS, institutions: Sequence[str] | None = None, *, shard: int = 0
) -> Scenario:
    """The pilot scaled to `educators` people; every count scales in proportion to the real one.

    `shard` > 0 builds another, independent pilot of the same size and distributions for a scaled run
    (`ScaledScenario`): other random draws, and keys, e-mails and event ids that cannot collide with any
    other shard's (they carry the shard number). Shard 0 is the scenario of `seed`, unchanged."""
    if educators < 1:
        raise ValueError("a scenario needs at least one educator")
    if shard < 0:
        raise ValueError("shards are numbered from 0")
    if institutions is None:
        institutions = list(load_institutions())
    codes = list(institutions)
    rng = random.Random(shard_seed(seed, shard))

    sizes = _institution_sizes(rng, codes, educators)
    homes = [code for code, size in zip(codes, sizes, strict=True) for _ in range(size)]
    months = _registration_months(rng, homes)
    people = _people(rng, seed, homes, months, shard)

    order = rng.sample(range(educators), educators)
    n_completed = scaled(REAL_COMPLETED_ALL, educators)
    n_certified = scaled(REAL_CERTIFIED, educators)
    certified = order[:n_certified]
    completed_only = order[n_certified:n_completed]
    rest = order[n_completed:]

    plans: dict[int, list[tuple[str, list[int]]]] = {}
    for i, idx in enumerate(certified):
        plans[idx] = _certified_plan(rng, forced_retake=i == 0)
    for i, idx in enumerate(completed_only):
        plans[idx] = _below_threshold_plan(rng, forced=i)
    for idx in rest:
        plans[idx] = _partial_plan(rng)

    masters = set(_master_teachers(rng, certified, order, scaled(REAL_MASTER_TEACHERS, educators)))
    built: list[SimEducator] = []
    for idx, person in enumerate(people):
        attempts = _attempts(rng, seed, person, plans.get(idx, []))
        built.append(replace(person, attempts=attempts, role="master_teacher" if idx in masters else "educator"))

    all_ids = [a.event_id for e in built for a in e.attempts]
    n_dup = min(len(all_ids), max(1, scaled(REAL_DUPLICATES, educators))) if all_ids else 0
    duplicates = tuple(sorted(rng.sample(all_ids, n_dup)))
    return Scenario(seed=seed, educators=tuple(built), duplicate_event_ids=duplicates)


def _allocate(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Largest-remainder apportionment: exact total, `minimum` each when there is room, ties by order."""
    base = minimum if total >= minimum * len(weights) else 0
    left = total - base * len(weights)
    wsum = sum(weights)
    quotas = [left * w / wsum for w in weights]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: left - sum(counts)]:
        counts[i] += 1
    return [base + c for c in counts]


def _institution_sizes(rng: random.Random, codes: Sequence[str], educators: int) -> list[int]:
    """A long tail of institutions, with MUST (which ran the pilot) the largest."""
    weights = [(1 / (rank + 1)) ** 0.85 * rng.uniform(0.85, 1.15) for rank in range(len(codes))]
    if LEAD_INSTITUTION in codes:
        lead = codes.index(LEAD_INSTITUTION)
        weights[lead] = 1.35 * max(w for i, w in enumerate(weights) if i != lead) if len(codes) > 1 else 1.0
    return _allocate(educators, weights, minimum=1)


def _registration_months(rng: random.Random, homes: Sequence[str]) -> list[int]:
    """Month index per educator; MUST is then made to lead March and April whenever it has ≥2 people."""
    months = [
        rng.choices(range(len(MONTHS)), _LEAD_MONTH_WEIGHTS if home == LEAD_INSTITUTION else _MONTH_WEIGHTS)[0]
        for home in homes
    ]
    lead_idx = [i for i, home in enumerate(homes) if home == LEAD_INSTITUTION]
    if len(lead_idx) < 2:
        return months
    lead_months = [MONTHS.index(m) for m in LEAD_MONTHS]
    others = [m for m in range(len(MONTHS)) if m not in lead_months]
    for m in lead_months:
        if not any(months[i] == m for i in lead_idx):  # borrow one from MUST's busiest other month
            busiest = Counter(months[i] for i in lead_idx).most_common(1)[0][0]
            months[next(i for i in lead_idx if months[i] == busiest)] = m
    for m in lead_months:
        lead_count = sum(1 for i in lead_idx if months[i] == m)
        in_month: dict[str, list[int]] = defaultdict(list)
        for i, home in enumerate(homes):
            if months[i] == m and home != LEAD_INSTITUTION:
                in_month[home].append(i)
        for members in in_month.values():
            for i in members[: max(0, len(members) - lead_count + 1)]:
                months[i] = rng.choice(others)
    return months


def _people(
    rng: random.Random, seed: int, homes: Sequence[str], months: Sequence[int], shard: int = 0
) -> list[SimEducator]:
    used: set[str] = set()
    people = []
    key_prefix = f"s{seed}-" if shard == 0 else f"s{seed}-k{shard}-"
    shard_tag = "" if shard == 0 else f".k{shard}"
    for idx, (home, month) in enumerate(zip(homes, months, strict=True)):
        given = rng.choice(GIVEN_NAMES)
        patronymic, father = rng.choice(PATRONYMICS)
        language = rng.choices(_LANGUAGES, _LANGUAGE_WEIGHTS)[0]
        domain = _email_domain(rng, home, language)
        salt = 0
        while True:
            tag = hashlib.sha256(f"{seed}/{idx}/{salt}".encode()).hexdigest()[:5]
            email = f"{latin(given)}.{latin(father)}.{tag}{shard_tag}@{domain}"
            if email not in used:
                break
            salt += 1
        used.add(email)
        year, mon = MONTHS[month]
        registered_at = datetime(
            year,
            mon,
            rng.randint(1, calendar.monthrange(year, mon)[1]),
            rng.randint(8, 20),
            rng.randrange(60),
            tzinfo=ULAANBAATAR,
        )
        people.append(
            SimEducator(
                key=f"{key_prefix}e{idx:05d}",
                institution=home,
                full_name=f"{patronymic} {given}",
                email=email,
                language=language,
                role="educator",
                registered_at=registered_at,
            )
        )
    return people


def _email_domain(rng: random.Random, institution: str, language: Language) -> str:
    """Mostly the university's own mail, some personal accounts (mail.ru is common among Russian speakers)."""
    roll = rng.random()
    if roll < 0.7:
        return f"{institution}.edu.mn"
    if language == "ru" and roll < 0.9:
        return "mail.ru"
    return rng.choice(("gmail.com", "gmail.com", "yahoo.com", "outlook.com"))


def _pass(rng: random.Random) -> int:
    return min(100, max(MIN_SCORE, round(rng.gauss(89, 6))))


def _fail(rng: random.Random) -> int:
    return min(MIN_SCORE - 1, max(35, round(rng.gauss(68, 9))))


def _certified_plan(rng: random.Random, *, forced_retake: bool) -> list[tuple[str, list[int]]]:
    """All three ≥ 80; some only via a retake after a first attempt below 80."""
    retake = rng.choice(COURSES) if forced_retake or rng.random() < 0.12 else None
    return [(c, [_fail(rng), _pass(rng)] if c == retake else [_pass(rng)]) for c in COURSES]


def _below_threshold_plan(rng: random.Random, *, forced: int) -> list[tuple[str, list[int]]]:
    """All three completed, at least one with a best score below 80 (including 79 and failed retakes)."""
    failing = set(rng.sample(COURSES, rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]))
    plan = []
    for course in COURSES:
        if course not in failing:
            plan.append((course, [_fail(rng), _pass(rng)] if rng.random() < 0.05 else [_pass(rng)]))
            continue
        shape = {0: "79", 1: "retake", 2: "retake79"}.get(forced) or rng.choices(
            ("once", "retake", "79", "retake79"), (0.6, 0.2, 0.12, 0.08)
        )[0]
        forced = -1  # the forced shape applies to one course only
        if shape == "79":
            scores = [MIN_SCORE - 1]
        elif shape == "retake":
            scores = [_fail(rng), _fail(rng)]
        elif shape == "retake79":
            scores = [_fail(rng), MIN_SCORE - 1]
        else:
            scores = [_fail(rng)]
        plan.append((course, scores))
    return plan


def _partial_plan(rng: random.Random) -> list[tuple[str, list[int]]]:
    """About 60% of the rest started: 1–2 courses finished, in programme order; the others did none."""
    if rng.random() >= 0.6:
        return []
    done = COURSES[: rng.choice((1, 1, 2))]
    return [(c, [_fail(rng), _pass(rng)] if rng.random() < 0.1 else [rng.choice((_pass, _fail))(rng)]) for c in done]


def _master_teachers(rng: random.Random, certified: Sequence[int], order: Sequence[int], count: int) -> list[int]:
    """Master teachers (cascade model) come from those who certified; others only if there are too few."""
    head = rng.sample(list(certified), min(count, len(certified)))
    chosen = set(head)
    return head + [i for i in order if i not in chosen][: count - len(head)]


def _attempts(
    rng: random.Random, seed: int, person: SimEducator, plan: Sequence[tuple[str, list[int]]]
) -> tuple[Attempt, ...]:
    """Courses in programme order, each attempt some days after the previous one."""
    at = person.registered_at + timedelta(days=rng.randint(3, 25), hours=rng.randint(0, 10))
    out = []
    for course, scores in plan:
        for n, score in enumerate(scores, start=1):
            out.append(Attempt(course, n, score, at, event_id_for(seed, person.key, course, n)))
            at += timedelta(days=rng.randint(2, 20), hours=rng.randint(0, 12), minutes=rng.randrange(60))
    return tuple(out)
