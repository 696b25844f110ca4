"""Programme rules: thresholds, best attempts, prerequisites, catalogue validation, certificate ids."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.certification.catalogue import CatalogueError, Programme, ProgrammeCatalogue
from services.certification.domain import (
    Certificate,
    CertificationError,
    Revocation,
    best_score,
    certificate_id_for,
    evaluate,
    is_earned,
    programmes_newly_earned,
    recognize,
    record_attempt,
    revoke,
)
from services.certification.reference import builtin_catalogue, load_catalogue

AI = "ai-in-higher-education"
AI_COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")
DTE, ADP, ATD = "digital-teaching-essentials", "applied-digital-pedagogy", "advanced-teaching-design"
CYRILLIC = re.compile(r"[А-Яа-яЁёӨөҮү]")


@pytest.fixture(scope="module")
def catalogue() -> ProgrammeCatalogue:
    return builtin_catalogue()


def passed(catalogue: ProgrammeCatalogue, *programme_ids: str, score: float = 90) -> dict[str, float]:
    return {c: score for p in programme_ids for c in catalogue.programme(p).course_ids}


def ids(programmes: list[Programme]) -> list[str]:
    return [p.id for p in programmes]


# --- the shipped catalogue -------------------------------------------------------------------------


def test_builtin_catalogue_has_the_ai_programme_and_the_tiered_track(catalogue: ProgrammeCatalogue) -> None:
    ai = catalogue.programme(AI)
    assert ai.tier == "standalone"
    assert ai.course_ids == AI_COURSES
    assert ai.min_score == 80
    assert ai.framework == "Mongolian National Teacher Qualification Framework"
    assert ai.framework_level
    assert ai.credits > 0
    assert {p.id: p.tier for p in catalogue.programmes if p.id != AI} == {
        DTE: "foundational",
        ADP: "intermediate",
        ATD: "advanced",
        "lightboard-teaching": "standalone",
        "ai-competency": "standalone",
    }
    assert catalogue.programme(ADP).requires == (DTE,)
    assert catalogue.programme(ATD).requires == (ADP,)


def test_every_name_and_title_exists_in_mongolian_english_and_russian(catalogue: ProgrammeCatalogue) -> None:
    texts = [p.names for p in catalogue.programmes] + [p.description for p in catalogue.programmes]
    texts += [c.titles for p in catalogue.programmes for c in p.courses]
    for text in texts:
        assert CYRILLIC.search(text.mn) and CYRILLIC.search(text.ru), text
        assert not CYRILLIC.search(text.en), text


def test_prerequisite_order_puts_every_programme_after_its_prerequisites(catalogue: ProgrammeCatalogue) -> None:
    order = ids(list(catalogue.in_prerequisite_order()))
    assert sorted(order) == sorted(p.id for p in catalogue.programmes)
    assert order.index(DTE) < order.index(ADP) < order.index(ATD)


# --- course lookups ----------------------------------------------------------------------------------


def test_course_lookups(catalogue: ProgrammeCatalogue) -> None:
    assert catalogue.is_known_course("teaching-with-ai")
    assert ids(list(catalogue.programmes_for_course("teaching-with-ai"))) == [AI]
    course = catalogue.course("teaching-with-ai")
    assert course is not None and course.titles.en == "Teaching with AI: Practical Tips and Prompts"


def test_unknown_course_is_unknown_and_advances_nothing(catalogue: ProgrammeCatalogue) -> None:
    assert not catalogue.is_known_course("underwater-basket-weaving")
    assert catalogue.programmes_for_course("underwater-basket-weaving") == ()
    assert catalogue.course("underwater-basket-weaving") is None
    assert programmes_newly_earned(catalogue, {"underwater-basket-weaving": 100}, set()) == []
    with pytest.raises(KeyError, match="no-such-programme"):
        catalogue.programme("no-such-programme")


# --- thresholds and best attempts --------------------------------------------------------------------


def test_three_ai_courses_at_80_or_more_earn_the_ai_certificate(catalogue: ProgrammeCatalogue) -> None:
    scores = {"genai-fundamentals": 80, "teaching-with-ai": 95.5, "future-classroom": 100}
    progress = evaluate(catalogue.programme(AI), scores, set())
    assert progress.earned
    assert progress.completed_courses == AI_COURSES
    assert progress.missing_courses == ()
    assert ids(programmes_newly_earned(catalogue, scores, set())) == [AI]


def test_a_79_blocks_the_certificate_until_a_better_attempt(catalogue: ProgrammeCatalogue) -> None:
    scores: dict[str, float] = {"genai-fundamentals": 90, "teaching-with-ai": 79, "future-classroom": 85}
    progress = evaluate(catalogue.programme(AI), scores, set())
    assert not progress.earned
    assert progress.below_threshold == ("teaching-with-ai",)
    assert progress.not_attempted == ()
    assert progress.missing_courses == ("teaching-with-ai",)
    assert programmes_newly_earned(catalogue, scores, set()) == []

    scores["teaching-with-ai"] = best_score(scores["teaching-with-ai"], 82)
    assert ids(programmes_newly_earned(catalogue, scores, set())) == [AI]


def test_best_attempt_counts_so_a_worse_retake_changes_nothing(catalogue: ProgrammeCatalogue) -> None:
    assert best_score(None, 61) == 61
    assert best_score(85, 70) == 85
    assert best_score(70, 85) == 85
    best: float | None = None
    for attempt in (60, 88, 40):
        best = best_score(best, attempt)
    assert best == 88
    scores = {"genai-fundamentals": 88, "teaching-with-ai": best_score(91, 12), "future-classroom": 80}
    assert evaluate(catalogue.programme(AI), scores, set()).earned


def test_progress_reports_untried_courses_and_best_scores(catalogue: ProgrammeCatalogue) -> None:
    progress = evaluate(catalogue.programme(AI), {"genai-fundamentals": 81, "elsewhere": 99}, set())
    assert progress.completed_courses == ("genai-fundamentals",)
    assert progress.not_attempted == ("teaching-with-ai", "future-classroom")
    assert [(c.course_id, c.best_score, c.passed) for c in progress.courses] == [
        ("genai-fundamentals", 81, True),
        ("teaching-with-ai", None, False),
        ("future-classroom", None, False),
    ]
    assert not progress.earned and not progress.already_held


# --- prerequisites and the fixed point ---------------------------------------------------------------


def test_intermediate_needs_the_foundational_certificate_not_just_its_courses(catalogue: ProgrammeCatalogue) -> None:
    scores = passed(catalogue, ADP)
    progress = evaluate(catalogue.programme(ADP), scores, set())
    assert progress.missing_courses == ()
    assert progress.missing_prerequisites == (DTE,)
    assert not progress.earned
    assert programmes_newly_earned(catalogue, scores, set()) == []
    assert evaluate(catalogue.programme(ADP), scores, {DTE}).earned


def test_earning_foundational_unlocks_the_whole_track_in_one_step(catalogue: ProgrammeCatalogue) -> None:
    scores = passed(catalogue, ATD, ADP)
    assert programmes_newly_earned(catalogue, scores, set()) == []

    scores.update(passed(catalogue, DTE))
    assert ids(programmes_newly_earned(catalogue, scores, set())) == [DTE, ADP, ATD]


def test_already_held_certificates_are_not_earned_again(catalogue: ProgrammeCatalogue) -> None:
    scores = passed(catalogue, DTE, ADP, AI)
    assert ids(programmes_newly_earned(catalogue, scores, {DTE, AI})) == [ADP]
    assert evaluate(catalogue.programme(DTE), scores, {DTE}).already_held
    assert programmes_newly_earned(catalogue, scores, {DTE, ADP, AI}) == []


def test_a_held_prerequisite_is_enough_even_if_its_courses_are_not_in_the_scores(
    catalogue: ProgrammeCatalogue,
) -> None:
    """Certificates are facts: a foundational certificate earned under an older catalogue still counts."""
    assert ids(programmes_newly_earned(catalogue, passed(catalogue, ADP), {DTE})) == [ADP]


def test_a_revoked_certificate_is_not_earned_again_and_unlocks_nothing(catalogue: ProgrammeCatalogue) -> None:
    scores = passed(catalogue, DTE, ADP, AI)
    assert ids(programmes_newly_earned(catalogue, scores, set(), barred={DTE})) == [AI]
    assert programmes_newly_earned(catalogue, scores, {AI}, barred={DTE}) == []


# --- certificate ids ---------------------------------------------------------------------------------


def test_certificate_id_is_deterministic_and_distinct() -> None:
    first = certificate_id_for("edu-1", AI)
    assert first == certificate_id_for("edu-1", AI)
    assert first == "cert-31a61d21-5c9d-5f4d-99c1-d089067870e4"  # pinned: replays must reproduce old ids
    assert uuid.UUID(first.removeprefix("cert-")).version == 5
    others = {certificate_id_for("edu-2", AI), certificate_id_for("edu-1", DTE), certificate_id_for("edu-1a", AI)}
    assert first not in others and len(others) == 3


def test_certificate_id_cannot_collide_by_shifting_characters_between_fields() -> None:
    assert certificate_id_for("a-b", "c") != certificate_id_for("a", "b-c")


# --- catalogue validation and operator extensions ----------------------------------------------------


def programme_doc(pid: str, courses: tuple[str, ...] = ("x-course",), **extra: Any) -> dict[str, Any]:
    text = {"mn": "Монгол нэр", "en": "English name", "ru": "Русское название"}
    return {
        "id": pid,
        "tier": "standalone",
        "names": text,
        "description": text,
        "courses": [{"id": c, "titles": text} for c in courses],
        "min_score": 80,
        "credits": 2,
        "framework": "Mongolian National Teacher Qualification Framework",
        "framework_level": "MNQF-7",
        **extra,
    }


def catalogue_json(*programmes: dict[str, Any]) -> str:
    return json.dumps({"version": 1, "programmes": list(programmes)}, ensure_ascii=False)


@pytest.mark.parametrize(
    ("programmes", "message"),
    [
        ([programme_doc("a-prog", requires=["missing-prog"])], "requires unknown programme"),
        (
            [
                programme_doc("a-prog", ("c1",), requires=["b-prog"]),
                programme_doc("b-prog", ("c2",), requires=["a-prog"]),
            ],
            "prerequisite cycle",
        ),
        ([programme_doc("a-prog"), programme_doc("a-prog")], "duplicate programme id"),
        ([programme_doc("a-prog", ("c1", "c1"))], "duplicate course id"),
        ([programme_doc("a-prog", requires=["a-prog"])], "requires itself"),
        ([programme_doc("a-prog", min_scor=80)], r"programmes\.0\.min_scor: Extra inputs are not permitted"),
        ([programme_doc("a-prog", tier="expert")], r"programmes\.0\.tier"),
        ([programme_doc("a-prog", ())], r"programmes\.0\.courses"),
    ],
)
def test_invalid_catalogues_are_rejected_with_a_clear_message(programmes: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        ProgrammeCatalogue.from_json(catalogue_json(*programmes), source="ops.json")


def test_a_missing_translation_names_the_field() -> None:
    doc = programme_doc("a-prog")
    doc["courses"][0]["titles"] = {"mn": "Монгол", "en": "English"}
    with pytest.raises(CatalogueError, match=r"ops\.json.*\n.*programmes\.0\.courses\.0\.titles\.ru: Field required"):
        ProgrammeCatalogue.from_json(catalogue_json(doc), source="ops.json")


def test_a_course_shared_by_programmes_must_have_one_description() -> None:
    one, two = programme_doc("a-prog", ("shared",)), programme_doc("b-prog", ("shared",))
    assert len(ProgrammeCatalogue.from_json(catalogue_json(one, two)).programmes_for_course("shared")) == 2
    two["courses"][0]["titles"] = {**two["courses"][0]["titles"], "en": "Another title"}
    with pytest.raises(CatalogueError, match="different titles"):
        ProgrammeCatalogue.from_json(catalogue_json(one, two))


def test_broken_json_is_reported_with_its_source() -> None:
    with pytest.raises(CatalogueError, match=r"ops\.json: not valid JSON"):
        ProgrammeCatalogue.from_json("{", source="ops.json")


def test_operators_can_add_programmes_that_build_on_shipped_ones(tmp_path: Path) -> None:
    extra = tmp_path / "ops.json"
    extra.write_text(catalogue_json(programme_doc("ai-research-supervision", ("ars-1",), requires=[AI])), "utf-8")
    merged = load_catalogue(extra)
    assert merged.programme("ai-research-supervision").requires == (AI,)
    order = ids(list(merged.in_prerequisite_order()))
    assert order.index(AI) < order.index("ai-research-supervision")
    scores = {**passed(merged, AI), "ars-1": 80}
    assert ids(programmes_newly_earned(merged, scores, set())) == [AI, "ai-research-supervision"]


def test_operators_cannot_silently_redefine_a_shipped_programme(tmp_path: Path) -> None:
    extra = tmp_path / "ops.json"
    extra.write_text(catalogue_json(programme_doc(AI, ("other-course",))), "utf-8")
    with pytest.raises(CatalogueError, match=f"duplicate programme id.*{AI}"):
        load_catalogue(extra)


def test_a_missing_operator_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read catalogue"):
        load_catalogue(tmp_path / "absent.json")


def test_recognition_id_is_deterministic_per_receiving_programme() -> None:
    from services.certification.domain import recognition_id_for

    first = recognition_id_for("cert-1", "num", "MEd Educational Technology")
    assert first == recognition_id_for("cert-1", "num", "MEd Educational Technology")
    assert first.startswith("rec-")
    assert first != recognition_id_for("cert-1", "num", "MEd Other")
    assert first != recognition_id_for("cert-1", "must", "MEd Educational Technology")


# --- entity rules: attempts, revocation, recognition -------------------------------------------------


T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)


def certificate(credits: float = 3) -> Certificate:
    return Certificate(certificate_id_for("edu-1", AI), "edu-1", "must", AI, AI_COURSES, credits, T0, "kid", "jws")


def test_record_attempt_keeps_the_best_its_date_the_first_date_and_counts_every_attempt() -> None:
    first = record_attempt(None, "teaching-with-ai", 70, T0 + timedelta(days=2))
    better = record_attempt(first, "teaching-with-ai", 85, T0 + timedelta(days=3))
    worse_but_earlier = record_attempt(better, "teaching-with-ai", 10, T0)
    assert (first.best_score, first.attempts) == (70, 1)
    assert (better.best_score, better.best_completed_at) == (85, T0 + timedelta(days=3))
    assert worse_but_earlier.best_score == 85 and worse_but_earlier.attempts == 3
    assert worse_but_earlier.first_completed_at == T0


def test_revoking_twice_returns_the_first_revocation() -> None:
    revocation, new = revoke(certificate(), "misconduct", T0)
    assert new and revocation.reason == "misconduct"
    again, new_again = revoke(replace(certificate(), revocation=revocation), "other", T0 + timedelta(days=1))
    assert again == revocation and not new_again


@pytest.mark.parametrize(("credits", "granted"), [(None, 3), (3, 3), (0.5, 0.5)])
def test_recognition_grants_at_most_the_certificates_credits(credits: float | None, granted: float) -> None:
    recognition, new = recognize(certificate(), "num", "MEd", credits, existing=None, at=T0)
    assert new and recognition.credits == granted


@pytest.mark.parametrize(
    ("cert", "credits", "code"),
    [
        (certificate(), 3.01, "credits_exceed_certificate"),
        (replace(certificate(), revocation=Revocation("x", "r", T0)), 1, "certificate_revoked"),
    ],
)
def test_recognition_limits(cert: Certificate, credits: float, code: str) -> None:
    with pytest.raises(CertificationError) as refused:
        recognize(cert, "num", "MEd", credits, existing=None, at=T0)
    assert refused.value.code == code


def test_the_domain_and_use_cases_import_no_io_library() -> None:
    probe = (
        "import sys, services.certification.domain, services.certification.usecases;"
        "print([m for m in ('asyncpg', 'nats', 'fastapi', 'httpx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_fast_earned_check_agrees_with_the_progress_report_on_generated_cases() -> None:
    """`is_earned` runs on every completion; `evaluate` builds the report people see around it: the rule must
    agree with what the report shows (nothing missing ⇔ earned)."""
    import random

    catalogue = builtin_catalogue()
    courses = [c for p in catalogue.programmes for c in p.course_ids]
    programme_ids = [p.id for p in catalogue.programmes]
    rng = random.Random(7)
    outcomes = set()
    for _ in range(2000):
        scores = {c: rng.choice((0.0, 79.99, 80.0, 100.0)) for c in rng.sample(courses, rng.randint(0, len(courses)))}
        held = set(rng.sample(programme_ids, rng.randint(0, 3)))
        for programme in catalogue.programmes:
            progress = evaluate(programme, scores, held)
            earned = not progress.missing_courses and not progress.missing_prerequisites
            assert is_earned(programme, scores, held) == earned, (programme.id, scores, held)
            assert progress.earned == earned
            outcomes.add(earned)
    assert outcomes == {True, False}
