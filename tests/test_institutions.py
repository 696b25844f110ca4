"""The shipped institution catalogue and the operator override file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from iioe.reference import INSTITUTIONS_FILE_ENV, load_institutions
from iioe.subjects import INSTITUTION_CODE_RE


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTITUTIONS_FILE_ENV, raising=False)


def _write(path: Path, institutions: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"version": 1, "institutions": institutions}), encoding="utf-8")
    return path


def _entry(code: str, name_en: str = "Test Institute") -> dict[str, Any]:
    return {
        "code": code,
        "name_en": name_en,
        "name_mn": "Туршилтын Сургууль",
        "city": "Darkhan",
        "type": "private",
    }


def test_ships_38_institutions() -> None:
    assert len(load_institutions()) == 38


def test_must_present() -> None:
    must = load_institutions()["must"]
    assert must.name_en == "Mongolian University of Science and Technology"
    assert must.type == "public"


def test_shipped_codes_valid_and_unique() -> None:
    shipped = Path(__file__).parents[1] / "shared" / "iioe" / "reference" / "institutions.json"
    codes = [row["code"] for row in json.loads(shipped.read_text(encoding="utf-8"))["institutions"]]
    assert len(codes) == len(set(codes)) == 38
    assert all(INSTITUTION_CODE_RE.fullmatch(code) for code in codes)
    assert all(key == inst.code for key, inst in load_institutions().items())


def test_mongolian_names_are_cyrillic() -> None:
    assert all(re.search("[А-Яа-яӨөҮү]", inst.name_mn) for inst in load_institutions().values())


def test_extra_file_adds_and_overrides(tmp_path: Path) -> None:
    extra = _write(tmp_path / "extra.json", [_entry("test-inst"), _entry("must", "MUST (renamed)")])
    catalogue = load_institutions(extra)
    assert len(catalogue) == 39
    assert catalogue["test-inst"].city == "Darkhan"
    assert catalogue["must"].name_en == "MUST (renamed)"
    assert catalogue["num"].name_en == "National University of Mongolia"


def test_env_var_names_extra_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extra = _write(tmp_path / "extra.json", [_entry("env-inst")])
    monkeypatch.setenv(INSTITUTIONS_FILE_ENV, str(extra))
    assert "env-inst" in load_institutions()


def test_bad_code_raises(tmp_path: Path) -> None:
    extra = _write(tmp_path / "bad.json", [_entry("Bad Code")])
    with pytest.raises(ValueError, match="Bad Code") as info:
        load_institutions(extra)
    assert "bad.json" in str(info.value)


def test_duplicate_code_in_one_file_raises(tmp_path: Path) -> None:
    extra = _write(tmp_path / "dup.json", [_entry("dup-inst"), _entry("dup-inst")])
    with pytest.raises(ValueError, match="duplicate institution code 'dup-inst'"):
        load_institutions(extra)


def test_invalid_entry_raises(tmp_path: Path) -> None:
    entry = _entry("odd-type") | {"type": "municipal"}
    with pytest.raises(ValueError, match="odd-type"):
        load_institutions(_write(tmp_path / "odd.json", [entry]))
