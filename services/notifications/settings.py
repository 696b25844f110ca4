"""Notifications settings (env prefix `IIOE_NOTIFICATIONS_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from iioe.reference.programmes import PROGRAMMES_FILE
from iioe.runtime.settings import ServiceSettings

DEFAULT_PROGRAMMES_FILE = PROGRAMMES_FILE


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IIOE_NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    service_name: str = "notifications"
    http_port: int = 8004
    db_schema: str = "notifications"
    source: str = "urn:iioe:service:notifications"

    certification_url: str = Field(
        default="http://127.0.0.1:8002",
        validation_alias=AliasChoices(
            "certification_url", "IIOE_NOTIFICATIONS_CERTIFICATION_URL", "IIOE_CERTIFICATION_URL"
        ),
    )
    """Base of the link `<base>/verify/<id>` (the public verification page) in certificate e-mails."""
    programmes_file: Path | None = DEFAULT_PROGRAMMES_FILE
    """Programme catalogue (reference data, read-only) for display names; missing → the programme id."""
    institutions_file: Path | None = Field(default=None, validation_alias="IIOE_INSTITUTIONS_FILE")

    # e-mail channel
    smtp_host: str | None = None
    """When set, mail goes over SMTP; otherwise `.eml` files land in `mailbox_dir`."""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = 30.0
    mailbox_dir: Path | None = None
    """Default `<IIOE_DATA_DIR>/mailbox`."""
    mail_from: str = "IIOE micro-certification <noreply@iioe.example>"
    support_email: str = "support@iioe.example"
    mail_poll_seconds: float = 0.5
    mail_batch_size: int = 50
    mail_concurrency: int = 8
    """Messages handed to the relay at once (one kept SMTP connection each): a backlog drains in parallel.
    The mailbox takes a whole claimed batch at once (it writes them together)."""
    mail_max_attempts: int = 8
    mail_retry_base_seconds: float = 5.0
    mail_retry_cap_seconds: float = 600.0
    send_lease_seconds: float = 120.0
    """A `sending` row whose worker vanished is retried after this; must exceed the SMTP timeout."""
    contact_wait_seconds: float = 30 * 24 * 3600.0
    """A notification still waiting for the educator's contact after this is marked `expired`
    (the contacts stream keeps 30 days, so the contact can no longer arrive)."""

    # webhook channel
    webhook_workers: int = 4
    webhook_poll_seconds: float = 0.5
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 1.0
    webhook_retry_cap_seconds: float = 300.0
    webhook_allow: str = ""
    """Comma-separated `host` or `host:port` webhook targets accepted although private, loopback or one
    of the platform's own services (`IIOE_NOTIFICATIONS_WEBHOOK_ALLOW=127.0.0.1:9000,hooks.example.org`)."""
    digest_poll_seconds: float = 3600.0
    """How often the monthly-digest task looks for master teachers without last month's digest."""

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> NotificationsSettings:
        if self.send_lease_seconds <= self.smtp_timeout_seconds:
            raise ValueError("send_lease_seconds must exceed smtp_timeout_seconds, or a slow send could be repeated")
        return self

    @property
    def mailbox_path(self) -> Path:
        return self.mailbox_dir or self.data_dir / "mailbox"

    @property
    def webhook_allow_list(self) -> list[str]:
        return [entry.strip() for entry in self.webhook_allow.split(",") if entry.strip()]

    @property
    def webhook_lease_seconds(self) -> float:
        """A claimed delivery is retried by another worker only after its HTTP call must have ended."""
        return self.webhook_timeout_seconds * 2 + 30.0
