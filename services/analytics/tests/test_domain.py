"""The pure projection rules: how events split into facts, months and programme progress."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import services.analytics.domain as domain
from iioe.events import EducatorContact
from services.analytics.domain import (
    ProjectionDeltas,
    ProjectionEvent,
    ProjectionRules,
    programme_progress,
    split_events,
)
from services.analytics.settings import AI_PROGRAMME_ID
from services.analytics.tests.helpers import AI_COURSES, completed, issued, recognized, registered, revoked

RULES = ProjectionRules(AI_PROGRAMME_ID, AI_COURSES, "Asia/Ulaanbaatar")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_months_are_ulaanbaatar_months() -> None:
    assert RULES.month_of(at("2025-03-31T15:59:59+00:00")) == "2025-03"
    assert RULES.month_of(at("2025-03-31T16:00:00+00:00")) == "2025-04"
    assert ProjectionRules(AI_PROGRAMME_ID, AI_COURSES, "UTC").month_of(at("2025-03-31T16:00:00+00:00")) == "2025-03"


def test_each_event_type_splits_into_its_own_facts_and_others_into_none() -> None:
    contact = EducatorContact(educator_id="e9", institution="must", full_name="A B", email="a@b.mn", language="mn")
    events = [registered("e1", "must"), completed("e1", "num", AI_COURSES[0]), issued("c1", "e1", "must")]
    events += [revoked("c1", "e1", "must"), recognized("r1", "c1", "e1", "must")]
    deltas = split_events([ProjectionEvent(e.id, e.data) for e in events] + [ProjectionEvent("x", contact)])
    assert len(deltas) == 5
    assert [len(x) for x in (deltas.registrations, deltas.completions, deltas.issued, deltas.revoked)] == [1, 1, 1, 1]
    assert deltas.recognitions[0].credits == 6.0
    assert deltas.educators_seen() == [("e1", "num"), ("e1", "must"), ("e1", "must")]
    assert deltas.educators_with_new_completions() == ["e1"]
    assert deltas.educators_with_certificate_changes() == ["e1"]
    assert "A B" not in repr(deltas) and "a@b.mn" not in repr(deltas)


def test_completion_counts_count_every_attempt_by_institution_course_and_month() -> None:
    events = [
        completed("e1", "must", AI_COURSES[0], at="2025-04-01T10:00:00+08:00", score=20),
        completed("e1", "must", AI_COURSES[0], at="2025-04-03T10:00:00+08:00", score=90),
        completed("e2", "must", AI_COURSES[0], at="2025-03-31T20:00:00+00:00"),
        completed("e3", "num", AI_COURSES[1], at="2025-05-01T10:00:00+08:00"),
    ]
    counts = split_events([ProjectionEvent(e.id, e.data) for e in events]).completion_counts(RULES)
    assert counts == {("must", AI_COURSES[0], "2025-04"): 3, ("num", AI_COURSES[1], "2025-05"): 1}


def test_programme_is_complete_at_the_last_first_completion_of_its_courses() -> None:
    firsts = {AI_COURSES[0]: at("2025-04-01T00:00:00+08:00"), AI_COURSES[1]: at("2025-06-01T00:00:00+08:00")}
    firsts["other-course"] = at("2025-09-01T00:00:00+08:00")
    assert programme_progress(firsts, RULES) == (2, None)
    firsts[AI_COURSES[2]] = at("2025-05-01T00:00:00+08:00")
    assert programme_progress(firsts, RULES) == (3, at("2025-06-01T00:00:00+08:00"))
    assert programme_progress(firsts, ProjectionRules("p", (), "UTC")) == (0, None)
    assert len(ProjectionDeltas()) == 0


def test_the_domain_imports_no_io_library() -> None:
    forbidden = {"asyncpg", "nats", "fastapi", "httpx", "uvicorn", "services.analytics.store"}
    for path in Path(domain.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in forbidden), f"{path.name} imports {name}"
