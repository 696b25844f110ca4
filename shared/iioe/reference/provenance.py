"""Where a catalogue fact comes from: a citation (`source`) or an honest `provisional: true`.

The shipped catalogues mix facts published by the programme (the IIOE Micro-Certification Project run by
the IIOE Mongolia National Centre at MUST) with values the platform had to assume (a credit value, a framework
level, the pilot institutions beyond MUST). Each entry says which it is, so that nobody reads an assumption as
an official figure. Every field is optional: catalogue files written before provenance existed still load,
and an entry without a `source` counts as provisional.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["Citation", "Provenance", "is_provisional"]

Citation = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
"""A URL or a bibliographic citation ("Partner contract v1, §5")."""


class Provenance(BaseModel):
    """The provenance of one value of an entry (its credit value, its framework level)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: Citation | None = None
    provisional: bool = False
    note: Citation | None = None
    """Why the value is provisional, or what exactly the source says."""

    @property
    def is_provisional(self) -> bool:
        return is_provisional(self.source, self.provisional)


def is_provisional(source: str | None, provisional: bool | None) -> bool:
    """Provisional when marked so, or when nothing is cited."""
    return bool(provisional) or not source
