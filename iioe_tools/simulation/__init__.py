"""`iioe simulate`: the partner systems of the national pilot, played against the public interfaces."""

from __future__ import annotations

from iioe_tools.simulation.scenario import (
    COURSES,
    PROGRAMME_ID,
    Attempt,
    GroundTruth,
    InstitutionTruth,
    Scenario,
    SimEducator,
    best_scores,
    build_scenario,
    is_certified,
)

__all__ = [
    "COURSES",
    "PROGRAMME_ID",
    "Attempt",
    "GroundTruth",
    "InstitutionTruth",
    "Scenario",
    "SimEducator",
    "best_scores",
    "build_scenario",
    "is_certified",
]
