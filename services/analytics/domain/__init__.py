"""Pure projection rules of the analytics service: no asyncpg, nats or fastapi import."""

from services.analytics.domain.facts import (
    Completion,
    Issuance,
    ProjectionDeltas,
    ProjectionEvent,
    ProjectionRules,
    Recognition,
    Registration,
    Revocation,
    programme_progress,
    split_events,
    unique_by_id,
)
from services.analytics.domain.projection import CertificateRow, EducatorRow, ProjectionState, RecognitionRow

__all__ = [
    "CertificateRow",
    "Completion",
    "EducatorRow",
    "Issuance",
    "ProjectionDeltas",
    "ProjectionEvent",
    "ProjectionRules",
    "ProjectionState",
    "Recognition",
    "RecognitionRow",
    "Registration",
    "Revocation",
    "programme_progress",
    "split_events",
    "unique_by_id",
]
