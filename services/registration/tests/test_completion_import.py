"""CSV import of course completions on the in-memory unit of work: every rule, no servers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import pytest

from iioe.commands import CommandRejected, RegisterEducatorRequest
from iioe.events import CourseCompleted
from services.registration.completions import COMPLETION_KIND, CompletionImports, CompletionReport
from services.registration.domain import RegisterEducator, completion_event_id, parse_completion
from services.registration.spreadsheets import COMPLETION_COLUMNS, COMPLETION_REQUIRED_COLUMNS, csv_rows
from services.registration.tests.fakes import FakeUnitOfWork
from services.registration.usecases import Registrations

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SOURCE = "urn:iioe:service:registration"
ACTOR = "partner-must"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def registrations(uow: FakeUnitOfWork) -> Registrations:
    ids = (f"edu-{n}" for n in itertools.count(1))
    return Registrations(uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW, new_id=lambda: next(ids))


@pytest.fixture
def imports(uow: FakeUnitOfWork) -> CompletionImports:
    return CompletionImports(uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW)


async def educator(registrations: Registrations, institution: str = "must", n: int = 0) -> str:
    body = {"full_name": "A B", "email": f"e{n}@{institution}.mn", "language": "mn"}
    reply = await registrations.register(RegisterEducator(institution, RegisterEducatorRequest.parse(body)))
    return reply.educator_id


def row(educator_id: str, course: str = "genai-fundamentals", **overrides: str) -> dict[str, str]:
    values = {
        "educator_id": educator_id,
        "course_id": course,
        "score": "92",
        "completed_at": "2025-04-02T15:00:00+08:00",
        "language": "mn",
    }
    return {**values, **overrides}


async def numbered(*rows: Mapping[str, str]) -> AsyncIterator[tuple[int, Mapping[str, str]]]:
    for number, values in enumerate(rows, start=2):
        yield number, values


async def run(
    imports: CompletionImports, *rows: Mapping[str, str], dry_run: bool = False, institution: str = "must"
) -> CompletionReport:
    return await imports.import_completions(institution, numbered(*rows), dry_run=dry_run, actor=ACTOR)


def outcomes(report: CompletionReport) -> list[tuple[int, str, str | None]]:
    return [(r.row, r.outcome, r.error) for r in report.rows]


def completions(uow: FakeUnitOfWork) -> list[CourseCompleted]:
    return [e for e in uow.events_of(CourseCompleted) if isinstance(e, CourseCompleted)]


async def test_each_valid_row_publishes_a_course_completed_with_the_tokens_actor(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    edu = await educator(registrations)
    report = await run(imports, row(edu), row(edu, "teaching-with-ai", score="80.5", language=""))

    assert outcomes(report) == [(2, "published", None), (3, "published", None)]
    staged = [s for s in uow.events if isinstance(s.event, CourseCompleted)]
    assert [(s.subject, s.source, s.actor) for s in staged] == [(edu, SOURCE, ACTOR)] * 2
    assert [s.event_id for s in staged] == [r.event_id for r in report.rows]
    first, second = completions(uow)
    assert first == CourseCompleted(
        educator_id=edu,
        institution="must",
        course_id="genai-fundamentals",
        score=92.0,
        completed_at=datetime.fromisoformat("2025-04-02T15:00:00+08:00"),
        language="mn",
    )
    assert first.completed_at.utcoffset() is not None and first.completed_at.isoformat().endswith("+08:00")
    assert (second.score, second.language) == (80.5, None)
    assert uow.record_actors[COMPLETION_KIND, str(report.rows[0].event_id)] == ACTOR


async def test_reimporting_the_same_completions_publishes_nothing_new(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    edu = await educator(registrations)
    first = await run(imports, row(edu), row(edu, "future-classroom"))
    published = len(uow.events)

    again = await run(imports, row(edu), row(edu, "future-classroom"))

    assert [r.outcome for r in again.rows] == ["already_published"] * 2
    assert [r.event_id for r in again.rows] == [r.event_id for r in first.rows]
    assert len(uow.events) == published
    assert again.summary() == {"published": 0, "already_published": 2, "error": 0}


async def test_the_natural_key_ignores_number_spelling_offset_and_language_but_not_the_score(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    edu = await educator(registrations)
    await run(imports, row(edu))
    same = row(edu, score="92.00", completed_at="2025-04-02T07:00:00Z", language="en")
    report = await run(imports, same, row(edu, score="95"), row(edu, completed_at="2025-04-03T15:00:00+08:00"))

    assert [r.outcome for r in report.rows] == ["already_published", "published", "published"]
    assert len(completions(uow)) == 3


def test_event_ids_are_deterministic_and_differ_per_institution_educator_and_course() -> None:
    base = parse_completion("must", row("edu-1"))
    assert completion_event_id(base) == completion_event_id(parse_completion("must", row("edu-1")))
    others = [
        parse_completion("num", row("edu-1")),
        parse_completion("must", row("edu-2")),
        parse_completion("must", row("edu-1", "teaching-with-ai")),
    ]
    ids = {completion_event_id(c) for c in [base, *others]}
    assert len(ids) == 4 and all(i.startswith("cc-") and len(i) <= 128 for i in ids)


async def test_the_educator_must_be_a_registered_educator_of_that_institution(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    mine = await educator(registrations)
    elsewhere = await educator(registrations, "num", 1)
    erased = await educator(registrations, n=2)
    await registrations.erase(erased, actor="operator")

    report = await run(imports, row("edu-unknown"), row(elsewhere), row(erased), row(mine))

    assert outcomes(report) == [
        (2, "error", "educator_not_found"),
        (3, "error", "educator_not_found"),
        (4, "error", "educator_erased"),
        (5, "published", None),
    ]
    assert len(completions(uow)) == 1


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"course_id": ""}, "missing_course_id"),
        ({"score": ""}, "missing_score"),
        ({"score": "ninety"}, "invalid_score"),
        ({"score": "nan"}, "invalid_score"),
        ({"score": "100.5"}, "invalid_score"),
        ({"score": "-1"}, "invalid_score"),
        ({"completed_at": ""}, "missing_completed_at"),
        ({"completed_at": "2025-04-02T15:00:00"}, "invalid_completed_at"),  # no offset
        ({"completed_at": "2025-04-02"}, "invalid_completed_at"),
        ({"completed_at": "2025-06-02T08:00:00Z"}, "completed_at_in_future"),
        ({"language": "de"}, "invalid_language"),
        ({"educator_id": ""}, "missing_educator_id"),
    ],
)
async def test_a_bad_row_is_reported_with_its_code_and_the_others_still_publish(
    registrations: Registrations,
    imports: CompletionImports,
    uow: FakeUnitOfWork,
    overrides: dict[str, str],
    code: str,
) -> None:
    edu = await educator(registrations)
    report = await run(imports, {**row(edu), **overrides}, row(edu, "future-classroom"))

    assert outcomes(report) == [(2, "error", code), (3, "published", None)]
    assert report.rows[0].message
    assert len(completions(uow)) == 1


async def test_a_dry_run_predicts_every_outcome_and_stores_nothing(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    edu = await educator(registrations)
    await run(imports, row(edu))
    events, records = len(uow.events), dict(uow.records)

    report = await run(
        imports,
        row(edu),  # imported before
        row(edu, "teaching-with-ai"),  # new
        row(edu, "teaching-with-ai", score="92.0"),  # the same completion again in this file
        row("edu-unknown"),
        dry_run=True,
    )

    assert outcomes(report) == [
        (2, "already_published", None),
        (3, "published", None),
        (4, "already_published", None),
        (5, "error", "educator_not_found"),
    ]
    assert (len(uow.events), uow.records) == (events, records)
    real = await run(imports, row(edu, "teaching-with-ai"))
    assert real.rows[0].event_id == report.rows[1].event_id


async def test_an_unknown_institution_is_refused_before_any_row(imports: CompletionImports) -> None:
    with pytest.raises(CommandRejected) as caught:
        await run(imports, row("edu-1"), institution="nowhere")
    assert caught.value.code == "unknown_institution"


async def test_a_csv_body_imports_through_the_completion_columns(
    registrations: Registrations, imports: CompletionImports, uow: FakeUnitOfWork
) -> None:
    edu = await educator(registrations)
    body = (
        "\ufeffEducator_ID,course_id,score,completed_at,extra\n"
        f"{edu},genai-fundamentals,88,2025-04-02T15:00:00+08:00,ignored\n"
        "\n"
        f"{edu},teaching-with-ai,,2025-04-02T15:00:00+08:00,\n"
    ).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    rows = csv_rows(
        chunks(), max_bytes=1 << 20, max_rows=10, columns=COMPLETION_COLUMNS, required=COMPLETION_REQUIRED_COLUMNS
    )
    report = await imports.import_completions("must", rows, dry_run=False, actor=ACTOR)

    assert outcomes(report) == [(2, "published", None), (4, "error", "missing_score")]
    assert [c.score for c in completions(uow)] == [88.0]


async def test_a_csv_without_the_required_columns_is_refused() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"educator_id,course_id,score\nedu-1,c,90\n"

    rows = csv_rows(
        chunks(), max_bytes=1 << 20, max_rows=10, columns=COMPLETION_COLUMNS, required=COMPLETION_REQUIRED_COLUMNS
    )
    with pytest.raises(CommandRejected) as caught:
        _ = [r async for r in rows]
    assert caught.value.code == "invalid_csv_header" and "completed_at" in caught.value.message
