"""The programme catalogue is reference data in one place (`iioe.reference`), read by every service."""

from __future__ import annotations

from pathlib import Path

import pytest

from iioe.reference import AI_PROGRAMME_ID, PROGRAMMES_FILE, load_programmes
from iioe_tools.simulation import COURSES, PROGRAMME_ID
from services.analytics.settings import AI_PROGRAMME_COURSES, AnalyticsSettings
from services.certification.reference import BUILTIN_CATALOGUE_PATH, builtin_catalogue
from services.notifications.rendering import ProgrammeNames
from services.notifications.settings import DEFAULT_PROGRAMMES_FILE


def test_the_shipped_catalogue_holds_the_contract_programme() -> None:
    ai = load_programmes()[AI_PROGRAMME_ID]
    assert ai.course_ids == ("genai-fundamentals", "teaching-with-ai", "future-classroom")
    assert ai.min_score == 80 and ai.credits > 0
    titles = {course.id: course.titles["en"] for course in ai.courses}
    assert titles["genai-fundamentals"] == "Fundamentals of Generative AI in Higher Education"
    assert titles["teaching-with-ai"] == "Teaching with AI: Practical Tips and Prompts"
    assert titles["future-classroom"] == "A Journey through the Future Classroom"


def test_every_reader_uses_the_one_file() -> None:
    assert BUILTIN_CATALOGUE_PATH == PROGRAMMES_FILE == DEFAULT_PROGRAMMES_FILE
    strict = builtin_catalogue()
    view = load_programmes()
    assert [p.id for p in strict.programmes] == list(view)
    assert all(strict.programme(pid).course_ids == info.course_ids for pid, info in view.items())
    assert AI_PROGRAMME_COURSES == AnalyticsSettings.model_fields["programme_courses"].default == COURSES
    assert PROGRAMME_ID == AI_PROGRAMME_ID
    assert ProgrammeNames.load(DEFAULT_PROGRAMMES_FILE).name(AI_PROGRAMME_ID, "en") == "AI in Higher Education"


def test_a_broken_catalogue_file_is_named_in_the_error(tmp_path: Path) -> None:
    broken = tmp_path / "ops.json"
    broken.write_text('{"version": 1, "programmes": [{"id": "x"}]}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"ops\.json"):
        load_programmes(broken)
    with pytest.raises(ValueError, match="cannot read"):
        load_programmes(tmp_path / "absent.json")
