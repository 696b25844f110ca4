"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from iioe.runtime.db import DatabaseTimeouts

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/iioe"


class ServiceSettings(BaseSettings):
    """Connection and runtime settings.

    `NATS_URL`, `DATABASE_URL`, `IIOE_DATA_DIR` and `LOG_LEVEL` are read unprefixed so one
    environment configures every service; per-service values use the subclass's prefix.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "iioe"
    nats_url: str = Field(default=DEFAULT_NATS_URL, validation_alias="NATS_URL")
    nats_user: str | None = Field(default=None, validation_alias="NATS_USER")
    nats_password: SecretStr | None = Field(default=None, validation_alias="NATS_PASSWORD")
    nats_token: SecretStr | None = Field(default=None, validation_alias="NATS_TOKEN")
    nats_creds_file: Path | None = Field(default=None, validation_alias="NATS_CREDS")
    """A standard NATS `.creds` file (decentralized JWT auth), instead of user/password or token."""
    nats_inbox_prefix: str | None = Field(default=None, validation_alias="NATS_INBOX_PREFIX")
    """Reply subjects of this process (`_INBOX_<user>`): the server lets only this user read them."""
    nats_tls_ca_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CA")
    nats_tls_cert_file: Path | None = Field(default=None, validation_alias="NATS_TLS_CERT")
    nats_tls_key_file: Path | None = Field(default=None, validation_alias="NATS_TLS_KEY")
    database_url: str = Field(default=DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL")
    data_dir: Path = Field(default=Path(".iioe"), validation_alias="IIOE_DATA_DIR")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    log_json: bool | None = Field(default=None, validation_alias="LOG_JSON")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    db_schema: str = "public"
    source: str = "urn:iioe:service:unknown"
    """CloudEvents `source` of events this service emits."""
    consumer_prefix: str = ""
    """Prefix for durable consumer names (tests use a unique one per run)."""
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    retry_backoff_seconds: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
    outage_backoff_initial_seconds: float = 0.5
    """After a database/NATS failure, consumers pause and probe after this long, doubling ..."""
    outage_backoff_max_seconds: float = 15.0
    """... up to this cap. Infrastructure failures never count against `max_deliver`."""
    db_command_timeout_seconds: float = 60.0
    """Client-side limit on any one database command (asyncpg `command_timeout`)."""
    db_statement_timeout_ms: int = 30_000
    """Server-side `statement_timeout` of every pooled connection (migrations lift it)."""
    db_lock_timeout_ms: int = 10_000
    db_idle_in_transaction_timeout_ms: int = 60_000
    db_tcp_keepalives_idle_seconds: int = 30
    db_tcp_keepalives_interval_seconds: int = 10
    db_tcp_keepalives_count: int = 3
    nats_ping_interval_seconds: float = 10.0
    nats_max_outstanding_pings: int = 3
    """A silent NATS server is given up after ping interval × this many unanswered pings."""
    outbox_poll_seconds: float = 5.0
    """The relay wakes on LISTEN/NOTIFY; this slow poll is only its safety net."""
    outbox_relay_enabled: bool = True
    """Off only to run the relay elsewhere (or, in tests, to stop a process between commit and publish)."""
    max_body_bytes: int = 64 * 1024
    """Contract §8: larger request bodies are refused with 413."""
    public_rate_per_second: float = Field(default=100.0, validation_alias="IIOE_PUBLIC_RATE_PER_SECOND")
    public_rate_burst: int = Field(default=1000, validation_alias="IIOE_PUBLIC_RATE_BURST")
    """Requests without credentials, per client address (429 with Retry-After beyond); 0 turns it off."""
    api_token: str | None = None
    """Bearer token for operator actions on this service's HTTP API (every operator scope)."""

    def database_timeouts(self) -> DatabaseTimeouts:
        from iioe.runtime.db import DatabaseTimeouts

        return DatabaseTimeouts(
            command_seconds=self.db_command_timeout_seconds,
            statement_ms=self.db_statement_timeout_ms,
            lock_ms=self.db_lock_timeout_ms,
            idle_in_transaction_ms=self.db_idle_in_transaction_timeout_ms,
            keepalives_idle_seconds=self.db_tcp_keepalives_idle_seconds,
            keepalives_interval_seconds=self.db_tcp_keepalives_interval_seconds,
            keepalives_count=self.db_tcp_keepalives_count,
        )

    def nats_auth(self) -> NatsAuthOptions:
        return NatsAuthOptions(
            user=self.nats_user,
            password=self.nats_password.get_secret_value() if self.nats_password else None,
            token=self.nats_token.get_secret_value() if self.nats_token else None,
            creds_file=self.nats_creds_file,
            inbox_prefix=self.nats_inbox_prefix,
            tls_ca_file=self.nats_tls_ca_file,
            tls_cert_file=self.nats_tls_cert_file,
            tls_key_file=self.nats_tls_key_file,
        )


@dataclass(frozen=True)
class NatsAuthOptions:
    """How a process proves who it is to NATS, and over what (TLS)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: Path | None = None
    inbox_prefix: str | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect`."""
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password or ""
        if self.token is not None:
            kwargs["token"] = self.token
        if self.creds_file is not None:
            kwargs["user_credentials"] = str(self.creds_file)
        if self.inbox_prefix:
            kwargs["inbox_prefix"] = self.inbox_prefix
        if self.tls_ca_file or self.tls_cert_file:
            context = ssl.create_default_context(cafile=str(self.tls_ca_file) if self.tls_ca_file else None)
            if self.tls_cert_file:
                context.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file) if self.tls_key_file else None)
            kwargs["tls"] = context
        return kwargs
