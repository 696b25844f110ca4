"""Registration settings (env prefix `IIOE_REGISTRATION_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from iioe.runtime.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IIOE_REGISTRATION_", extra="ignore", populate_by_name=True)

    service_name: str = "registration"
    http_port: int = 8001
    db_schema: str = "registration"
    source: str = "urn:iioe:service:registration"
    institutions_file: Path | None = Field(default=None, validation_alias="IIOE_INSTITUTIONS_FILE")
    """Extra institutions (same JSON shape as the shipped catalogue) that extend or override it."""
    command_queue: str = "registration"
    """Queue group of the register_educator responders: replicas share the requests."""
    command_max_in_flight: int = Field(default=64, ge=1)
    """Requests handled at once per process; more wait in the subscription (back-pressure).
    More than the bench's 50 offered, so the process, not this bound, is what limits throughput."""
    register_batch_size: int = Field(default=64, ge=1)
    """Concurrent registrations stored in one transaction, at most (1: each alone); see `batching.py`."""
    register_batches_at_once: int = Field(default=4, ge=1)
    """Registration batches being stored at once (each holds a pooled connection)."""
    db_pool_size: int = Field(default=20, ge=2)
    """PostgreSQL connections of the process (one is held by the outbox relay's LISTEN)."""
