"""Analytics settings (env prefix `IIOE_ANALYTICS_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from iioe.reference.programmes import AI_PROGRAMME_ID, load_programmes
from iioe.runtime.settings import ServiceSettings

AI_PROGRAMME_COURSES = load_programmes()[AI_PROGRAMME_ID].course_ids


class AnalyticsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IIOE_ANALYTICS_", extra="ignore", populate_by_name=True)

    service_name: str = "analytics"
    http_port: int = 8003
    db_schema: str = "analytics"
    source: str = "urn:iioe:service:analytics"
    institutions_file: Path | None = Field(default=None, validation_alias="IIOE_INSTITUTIONS_FILE")
    """Extra institutions for display names (same JSON shape as the shipped catalogue)."""

    batch_size: int = 500
    """Messages fetched per pull; each fetched batch is projected in one transaction."""
    snapshot_interval_seconds: float = 0.5
    """Coalescing window: at most one snapshot publication per interval, however many events arrive."""
    month_timezone: str = "Asia/Ulaanbaatar"
    """Months are reported in this time zone (the national centre's). Changing it needs `iioe analytics rebuild`."""
    programme_id: str = AI_PROGRAMME_ID
    programme_courses: tuple[str, ...] = AI_PROGRAMME_COURSES
    """The programme whose completion the funnel follows (any score counts). Changing it needs a rebuild."""
