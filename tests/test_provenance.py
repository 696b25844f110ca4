"""Every fact of the shipped catalogues says where it comes from — a `source` — or that it is provisional;
catalogue files written before provenance existed still load (their entries count as provisional)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iioe.reference import AI_PROGRAMME_ID, INSTITUTIONS_FILE_ENV, load_institutions, load_programmes
from iioe_tools.simulation import COURSES, PROGRAMME_ID
from services.analytics.settings import AI_PROGRAMME_COURSES
from services.certification.catalogue import ProgrammeCatalogue
from services.certification.reference import builtin_catalogue, load_catalogue

AI_COMPETENCY = "ai-competency"


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTITUTIONS_FILE_ENV, raising=False)


def test_every_shipped_institution_is_sourced_or_provisional() -> None:
    institutions = load_institutions()
    for inst in institutions.values():
        assert inst.source or inst.provisional, inst.code
        assert inst.source or inst.source_note, f"{inst.code}: a provisional entry says why"
    assert institutions["must"].source and not institutions["must"].is_provisional
    assert "ichei.org" in institutions["must"].source
    assert all(inst.is_provisional for code, inst in institutions.items() if code != "must")


def test_every_shipped_programme_credit_value_and_level_is_sourced_or_provisional() -> None:
    for programme in builtin_catalogue().programmes:
        assert programme.source or (programme.provisional and programme.source_note), programme.id
        for fact in (programme.credits_provenance, programme.framework_level_provenance):
            assert fact is not None, programme.id
            assert fact.source or fact.provisional, programme.id
    ai = builtin_catalogue().programme(AI_PROGRAMME_ID)
    assert ai.source and not ai.is_provisional and "contract v1, §5" in ai.source
    assert ai.credits_provenance and ai.credits_provenance.is_provisional  # no published credit value
    assert ai.framework_level_provenance and ai.framework_level_provenance.is_provisional


def test_the_ai_competency_courses_are_a_provisional_programme_in_three_languages() -> None:
    programme = builtin_catalogue().programme(AI_COMPETENCY)
    assert programme.is_provisional and programme.source is None and programme.source_note
    assert [c.titles.en for c in programme.courses] == [
        "Prompt & Teaching with AI",
        "AI Tools in Teaching Scenarios",
        "Build Your Own AI Chatbot",
    ]
    assert all(c.titles.mn and c.titles.ru for c in programme.courses)
    assert load_programmes()[AI_COMPETENCY].is_provisional


def test_the_funnel_still_follows_the_contract_programme() -> None:
    assert PROGRAMME_ID == AI_PROGRAMME_ID
    assert COURSES == AI_PROGRAMME_COURSES == ("genai-fundamentals", "teaching-with-ai", "future-classroom")
    catalogue = builtin_catalogue()
    assert [p.id for p in catalogue.programmes_for_course("teaching-with-ai")] == [AI_PROGRAMME_ID]


def test_catalogue_files_without_provenance_still_load_as_provisional(tmp_path: Path) -> None:
    institutions = tmp_path / "institutions.json"
    entry = {"code": "test-inst", "name_en": "Test", "name_mn": "Тест", "city": "Darkhan", "type": "private"}
    institutions.write_text(json.dumps({"version": 1, "institutions": [entry]}), encoding="utf-8")
    loaded = load_institutions(institutions)["test-inst"]
    assert loaded.source is None and loaded.is_provisional

    programme = builtin_catalogue().programme("lightboard-teaching").model_dump(mode="json")
    legacy = {k: v for k, v in programme.items() if k not in _PROVENANCE_FIELDS and v is not None}
    legacy |= {"id": "ops-programme", "courses": [{"id": "ops-course", "titles": legacy["courses"][0]["titles"]}]}
    extra = tmp_path / "ops.json"
    extra.write_text(json.dumps({"version": 1, "programmes": [legacy]}), encoding="utf-8")
    assert load_catalogue(extra).programme("ops-programme").is_provisional
    assert load_programmes(extra)["ops-programme"].is_provisional


def test_a_misspelt_provenance_field_is_a_catalogue_error() -> None:
    programme = builtin_catalogue().programme("lightboard-teaching").model_dump(mode="json", exclude_none=True)
    programme["credits_provenance"] = {"provisonal": True}
    with pytest.raises(ValueError, match="provisonal"):
        ProgrammeCatalogue.from_json(json.dumps({"version": 1, "programmes": [programme]}))


_PROVENANCE_FIELDS = {"source", "provisional", "source_note", "credits_provenance", "framework_level_provenance"}
