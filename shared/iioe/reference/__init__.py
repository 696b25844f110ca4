"""Reference data: the catalogues of participating institutions and of programmes.

The institution code is part of every NATS subject, so the catalogue is the one place that
says which codes exist. The shipped list covers the national rollout; operators add or
correct entries with an extra JSON file of the same shape instead of patching the package.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from iioe.reference.programmes import AI_PROGRAMME_ID, PROGRAMMES_FILE, CourseInfo, ProgrammeInfo, load_programmes
from iioe.reference.provenance import Citation, Provenance, is_provisional
from iioe.subjects import INSTITUTION_CODE_RE

__all__ = [
    "AI_PROGRAMME_ID",
    "INSTITUTIONS_FILE_ENV",
    "PROGRAMMES_FILE",
    "CourseInfo",
    "Institution",
    "ProgrammeInfo",
    "Provenance",
    "load_institutions",
    "load_programmes",
]

INSTITUTIONS_FILE_ENV = "IIOE_INSTITUTIONS_FILE"
"""Env var naming an extra catalogue file, used when `load_institutions` gets no `extra_file`."""

CATALOGUE_VERSION = 1
_SHIPPED_FILE = "institutions.json"


class Institution(BaseModel):
    """One institution; frozen so a loaded catalogue can be shared safely."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name_en: str
    name_mn: str
    name_ru: str | None = None
    """Russian name where a reliable translation is known; readers fall back to `name_en` (`name_in`)."""
    city: str
    type: Literal["public", "private"]
    source: Citation | None = None
    """Where the entry (the institution's participation in the programme) is documented: a URL or citation."""
    provisional: bool = False
    """True when the entry is the platform's assumption rather than a published fact (see `source_note`)."""
    source_note: Citation | None = None

    @property
    def is_provisional(self) -> bool:
        """Marked provisional, or nothing cited (catalogue files without provenance load as provisional)."""
        return is_provisional(self.source, self.provisional)

    def name_in(self, language: str) -> str:
        """The name in `language` (mn, en, ru); English when no translation is known."""
        if language == "mn":
            return self.name_mn
        if language == "ru" and self.name_ru:
            return self.name_ru
        return self.name_en


def _parse(text: str, source: str) -> dict[str, Institution]:
    """Validate one catalogue file; errors name `source` so operators know which file to fix."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("institutions"), list):
        raise ValueError(f"{source}: expected an object with an 'institutions' list")
    if doc.get("version") != CATALOGUE_VERSION:
        raise ValueError(f"{source}: unsupported catalogue version {doc.get('version')!r}")

    out: dict[str, Institution] = {}
    for index, entry in enumerate(doc["institutions"]):
        code = entry.get("code") if isinstance(entry, dict) else None
        if not isinstance(code, str) or not INSTITUTION_CODE_RE.fullmatch(code):
            raise ValueError(
                f"{source}: invalid institution code {code!r} at index {index} "
                f"(must match {INSTITUTION_CODE_RE.pattern})"
            )
        if code in out:
            raise ValueError(f"{source}: duplicate institution code {code!r}")
        try:
            out[code] = Institution.model_validate(entry)
        except ValidationError as exc:
            raise ValueError(f"{source}: invalid entry for institution code {code!r}: {exc}") from exc
    return out


def load_institutions(extra_file: Path | None = None) -> dict[str, Institution]:
    """Return the catalogue keyed by code: the shipped list, overridden by an operator's file.

    `extra_file` (or, when it is None, the file named by `IIOE_INSTITUTIONS_FILE`) adds
    entries and replaces shipped ones with the same code. Raises `ValueError` on a malformed
    file, an invalid code or a code repeated within one file.
    """
    shipped = resources.files(__name__).joinpath(_SHIPPED_FILE)
    catalogue = _parse(shipped.read_text(encoding="utf-8"), f"{__name__}/{_SHIPPED_FILE}")

    if extra_file is None:
        env_value = os.environ.get(INSTITUTIONS_FILE_ENV)
        extra_file = Path(env_value) if env_value else None
    if extra_file is not None:
        try:
            text = extra_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{extra_file}: cannot read institutions file: {exc}") from exc
        catalogue.update(_parse(text, str(extra_file)))
    return catalogue
