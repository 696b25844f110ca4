"""Certification settings (env prefix `IIOE_CERTIFICATION_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from iioe.runtime.settings import ServiceSettings
from services.certification.credentials import DEFAULT_ISSUER, IssuerProfile
from services.certification.key_vault import KeyVault, load_or_create_kek

SOURCE = "urn:iioe:service:certification"
"""The CloudEvents `source` of every event this service emits."""


class CertificationSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="IIOE_CERTIFICATION_", extra="ignore", populate_by_name=True)

    service_name: str = "certification"
    http_port: int = 8002
    db_schema: str = "certification"
    source: str = SOURCE
    issuer_id: str = DEFAULT_ISSUER.id
    """The credential's `iss` (and OB 3.0 issuer profile id); verification insists on it."""
    issuer_name: str = DEFAULT_ISSUER.name
    issuer_url: str | None = DEFAULT_ISSUER.url
    catalogue_files: list[Path] = Field(default_factory=list)
    """Operator catalogue files (JSON list of paths) that add programmes to the shipped catalogue."""
    institutions_file: Path | None = Field(default=None, validation_alias="IIOE_INSTITUTIONS_FILE")
    """Extra institutions, so credit recognitions can name receiving institutions outside the pilot list."""
    consumer_batch_size: int = 100
    consumer_workers: int = Field(default=2, ge=1)
    """Batches handled at once by this process (`ConsumerSpec.workers`): a batch mostly waits on PostgreSQL,
    and two are as safe as two replicas (educators locked in sorted order, the inbox)."""
    public_url: str | None = None
    """How verifiers reach this service (status list URLs in credentials, verification page, QR codes);
    default `http://127.0.0.1:<http_port>`. Set it before issuing: credentials carry it for good."""
    status_list_size: int = Field(default=131_072, ge=131_072, multiple_of=8)
    """Entries per W3C Bitstring Status List (the spec's minimum, 16 KiB, is the default)."""

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.http_port}").rstrip("/")

    key_encryption_key: SecretStr | None = None
    """`IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY`: base64url of 32 bytes sealing the signing keys at rest (deploy)."""
    key_encryption_key_file: Path | None = None
    """A file holding that value (a mounted secret); default: `IIOE_DATA_DIR/certification/kek`, created 0600."""
    pending_completion_ttl_seconds: float = 7 * 24 * 3600
    """A completion parked for an educator never registered goes to the DLQ (`educator_unknown`) after this."""
    pending_sweep_seconds: float = 300
    """How often parked completions are checked against that limit."""

    def key_vault(self) -> KeyVault:
        """The signing keys' sealing key (see `key_vault.py`): env value, secret file, or the data dir's file."""
        kek = load_or_create_kek(
            value=self.key_encryption_key.get_secret_value() if self.key_encryption_key else None,
            file=self.key_encryption_key_file,
            data_dir=self.data_dir,
        )
        return KeyVault(kek)

    @property
    def issuer(self) -> IssuerProfile:
        return IssuerProfile(id=self.issuer_id, name=self.issuer_name, url=self.issuer_url)
