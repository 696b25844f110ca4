"""Data sets for the v1.1 tests: `cascade_events`, a small cascade with known numbers, and
`demo_events`, a deterministic, realistic-looking one for the dashboard screenshot (docs/dashboard.png):
registrations over nine months, completions, certificates (a few revoked or suspended), master
teachers training others (with a second generation), practice reports, evaluations, transfers."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from iioe.envelope import CloudEvent
from services.analytics.tests.helpers import (
    AI_COURSES,
    attended,
    completed,
    evaluated,
    issued,
    practice,
    registered,
    revoked,
    role_changed,
    session_held,
    suspended,
    transfer_decided,
    transfer_requested,
)

INSTITUTIONS = {"num": 9, "must": 8, "msue": 7, "mnums": 4, "ufe": 4, "muls": 3, "uh": 3, "khu": 2, "du": 2}
INSTITUTIONS |= {"miu": 2, "mandakh": 1, "ider": 1, "huree": 1}
REGIONS = ("Ulaanbaatar", "Ulaanbaatar", "Darkhan", "Erdenet", "Khovd", "Dornod")
MODES = ("online", "online", "face_to_face", "hybrid")


def cascade_events(ref: str, a: str, b: str) -> list[Any]:
    """A small cascade across institutions `a` (the master teacher m) and `b`: t1 becomes a master
    teacher and trains u1; t2's certificate is suspended; ratings, a practice report, a transfer."""
    m, t1, t2, u1 = (f"{ref}-{x}" for x in ("m", "t1", "t2", "u1"))
    return [
        registered(m, a, role="master_teacher"),
        *[registered(e, b) for e in (t1, t2, u1)],
        role_changed(t1, b, "master_teacher", at="2025-04-01T10:00:00+08:00"),
        session_held(f"{ref}-s1", m, a, region="Khovd", mode="hybrid"),
        attended(f"{ref}-s1", t1, b),
        attended(f"{ref}-s1", t2, b),
        session_held(f"{ref}-s2", t1, b),
        attended(f"{ref}-s2", u1, b),
        *[completed(t1, b, c) for c in AI_COURSES],
        issued(f"{ref}-c1", t1, b),
        issued(f"{ref}-c2", t2, b),
        suspended(f"{ref}-c2", t2, b),
        practice(t1, b, True),
        evaluated(t1, b, AI_COURSES[0], content=4, usefulness=5, language="ru"),
        evaluated(t2, b, AI_COURSES[0], content=3, usefulness=5, language="ru"),
        transfer_requested(f"{ref}-q1", t1, b, receiving=a, certificate_id=f"{ref}-c1"),
        transfer_decided(f"{ref}-q1", t1, b, "accepted", receiving=a, credits=6),
    ]


def _at(day: datetime) -> str:
    return day.isoformat()


def demo_events(ref: str, educators: int = 500, seed: int = 7) -> list[CloudEvent[Any]]:
    rng = random.Random(seed)
    codes, weights = list(INSTITUTIONS), list(INSTITUTIONS.values())
    start = datetime.fromisoformat("2025-01-06T09:00:00+08:00")
    events: list[CloudEvent[Any]] = []
    people: list[tuple[str, str, datetime]] = []
    masters: list[tuple[str, str]] = []
    for n in range(educators):
        edu, inst = f"{ref}-d{n:03d}", rng.choices(codes, weights)[0]
        # more registrations as the rollout goes on
        when = start + timedelta(days=int(250 * rng.random() ** 0.8), hours=rng.randint(0, 9))
        role = "master_teacher" if rng.random() < 0.05 else "educator"
        language = rng.choices(("mn", "en", "ru"), (8, 1, 1))[0]
        events.append(registered(edu, inst, at=_at(when), role=role, language=language))
        people.append((edu, inst, when))
        if role == "master_teacher":
            masters.append((edu, inst))
        if rng.random() > 0.72:
            continue
        day, scores = when, []
        for course in AI_COURSES:
            if rng.random() > 0.85:
                break
            day += timedelta(days=rng.randint(5, 25))
            score = float(rng.randint(68, 100))
            scores.append(score)
            events.append(completed(edu, inst, course, at=_at(day), score=score))
            if rng.random() < 0.6:
                events.append(
                    evaluated(
                        edu,
                        inst,
                        course,
                        content=rng.choices((2, 3, 4, 5), (1, 2, 5, 4))[0],
                        usefulness=rng.choices((2, 3, 4, 5), (1, 2, 4, 5))[0],
                        language=language,
                        time=_at(day),
                    )
                )
        if len(scores) == len(AI_COURSES):
            if rng.random() < 0.55:
                events.append(practice(edu, inst, rng.random() < 0.7, on=(day + timedelta(days=30)).date().isoformat()))
            if min(scores) >= 80:
                cert, issued_at = f"{ref}-cert{n}", day + timedelta(hours=2)
                events.append(issued(cert, edu, inst, at=_at(issued_at)))
                if rng.random() < 0.03:
                    events.append(revoked(cert, edu, inst, at=_at(issued_at + timedelta(days=20))))
                elif rng.random() < 0.03:
                    events.append(suspended(cert, edu, inst, at=_at(issued_at + timedelta(days=10))))
                elif rng.random() < 0.12:
                    req, target = f"{ref}-q{n}", rng.choice(("must", "num", "msue"))
                    events.append(transfer_requested(req, edu, inst, receiving=target, certificate_id=cert))
                    if rng.random() < 0.8:
                        decision = "accepted" if rng.random() < 0.75 else "rejected"
                        events.append(transfer_decided(req, edu, inst, decision, receiving=target, credits=3))
    # the cascade: each master teacher trains a few groups; some trainees become master teachers
    session_no = 0

    def hold(master: str, inst: str, trainees: list[tuple[str, str, datetime]], on: datetime) -> None:
        nonlocal session_no
        session_no += 1
        session = f"{ref}-ses{session_no}"
        region, mode = rng.choice(REGIONS), rng.choice(MODES)
        events.append(session_held(session, master, inst, region=region, mode=mode, on=on.date().isoformat()))
        for edu, trainee_inst, _ in trainees:
            events.append(attended(session, edu, trainee_inst))

    second: list[tuple[str, str]] = []
    master_ids = {m for m, _ in masters}
    pool = [p for p in people if p[0] not in master_ids]
    for master, inst in masters:
        for _ in range(rng.randint(1, 3)):
            group = rng.sample(pool, k=rng.randint(4, 12))
            hold(master, inst, group, start + timedelta(days=rng.randint(40, 200)))
            for edu, trainee_inst, _ in group[:1]:
                if rng.random() < 0.5:
                    events.append(role_changed(edu, trainee_inst, at=_at(start + timedelta(days=210))))
                    second.append((edu, trainee_inst))
    for master, inst in second:
        hold(master, inst, rng.sample(pool, k=rng.randint(3, 9)), start + timedelta(days=rng.randint(215, 260)))
    return events
