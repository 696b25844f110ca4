"""Signing keys at rest: private JWKs are sealed with a key-encryption key (KEK) that is never in the database.

The KEK (32 random bytes, AES-256-GCM) comes from, in order:

1. `IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY` — base64url of 32 bytes (a deploy secret in the environment);
2. `IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY_FILE` — a file holding that value (a mounted secret);
3. `IIOE_DATA_DIR/certification/kek` — created with mode 0600 on first start (one machine, `iioe up`).

A stolen database dump then holds no usable signing key. Each sealed key is bound to its kid (AES-GCM
associated data), so a ciphertext cannot be moved under another kid; `kek_id` (a fingerprint of the KEK)
names which KEK sealed a row, so a wrong KEK is reported as such rather than as corrupt data.

Backups (`iioe certification keys export/import`) are a second, independent envelope: the key records
as JSON, sealed with AES-256-GCM under a key derived from an operator passphrase (scrypt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from services.certification.credentials import KeyRecord

__all__ = [
    "BACKUP_FORMAT",
    "KEK_ENV",
    "PASSPHRASE_ENV",
    "KeyVault",
    "KeyVaultError",
    "export_backup",
    "import_backup",
    "load_or_create_kek",
]

KEK_ENV = "IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY"
PASSPHRASE_ENV = "IIOE_CERTIFICATION_KEY_BACKUP_PASSPHRASE"
BACKUP_FORMAT = "iioe-certification-keys/1"
_NONCE = 12
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class KeyVaultError(Exception):
    """The KEK is missing, malformed or not the one that sealed a key; or a backup cannot be opened."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _parse_kek(text: str, origin: str) -> bytes:
    try:
        kek = _b64d(text)
    except (ValueError, TypeError):
        raise KeyVaultError(f"{origin}: the key-encryption key is not base64url") from None
    if len(kek) != 32:
        raise KeyVaultError(f"{origin}: the key-encryption key must be 32 bytes (base64url), got {len(kek)}")
    return kek


def load_or_create_kek(*, value: str | None, file: Path | None, data_dir: Path) -> bytes:
    """The KEK from the environment value, else the secret file, else `data_dir/certification/kek` (created 0600)."""
    if value:
        return _parse_kek(value, KEK_ENV)
    if file is not None:
        try:
            return _parse_kek(file.read_text(encoding="ascii"), str(file))
        except OSError as exc:
            raise KeyVaultError(f"cannot read the key-encryption key file {file}: {exc}") from None
    path = data_dir / "certification" / "kek"
    if path.exists():
        return _parse_kek(path.read_text(encoding="ascii"), str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kek = secrets.token_bytes(32)
    try:  # O_EXCL: two replicas starting together on one data dir keep the first one's KEK
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _parse_kek(path.read_text(encoding="ascii"), str(path))
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(_b64e(kek) + "\n")
    return kek


@dataclass(frozen=True)
class SealedKey:
    """A private JWK as stored: AES-GCM nonce + ciphertext, and the fingerprint of the KEK that sealed it."""

    ciphertext: bytes
    kek_id: str


class KeyVault:
    """Seals and opens private JWKs with the KEK (AES-256-GCM, the kid as associated data)."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise KeyVaultError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(kek)
        self.kek_id = hashlib.sha256(b"iioe-kek-id:" + kek).hexdigest()[:16]

    def __repr__(self) -> str:  # never the key itself
        return f"KeyVault(kek_id={self.kek_id!r})"

    def seal(self, kid: str, private_jwk: Mapping[str, Any]) -> SealedKey:
        nonce = secrets.token_bytes(_NONCE)
        plaintext = json.dumps(dict(private_jwk), sort_keys=True).encode()
        return SealedKey(nonce + self._aead.encrypt(nonce, plaintext, kid.encode()), self.kek_id)

    def open(self, kid: str, sealed: SealedKey) -> dict[str, Any]:
        if sealed.kek_id != self.kek_id:
            raise KeyVaultError(
                f"signing key {kid!r} was sealed with key-encryption key {sealed.kek_id}, this process has"
                f" {self.kek_id}: configure the KEK it was sealed with ({KEK_ENV} or IIOE_DATA_DIR/certification/kek)"
            )
        try:
            plaintext = self._aead.decrypt(sealed.ciphertext[:_NONCE], sealed.ciphertext[_NONCE:], kid.encode())
        except InvalidTag:
            raise KeyVaultError(f"signing key {kid!r} does not open with this key-encryption key") from None
        jwk: dict[str, Any] = json.loads(plaintext)
        return jwk


# --- backups ------------------------------------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes) -> bytes:
    if not passphrase:
        raise KeyVaultError(f"an empty passphrase is not accepted (set {PASSPHRASE_ENV} or type one)")
    return Scrypt(salt=salt, length=32, **_SCRYPT).derive(passphrase.encode())


def _record_doc(record: KeyRecord) -> dict[str, Any]:
    return {
        "kid": record.kid,
        "private_jwk": dict(record.private_jwk),
        "created_at": record.created_at.isoformat(),
        "active": record.active,
        "compromised_at": record.compromised_at.isoformat() if record.compromised_at else None,
    }


def export_backup(records: Iterable[KeyRecord], passphrase: str) -> bytes:
    """Every key record as JSON, sealed under a passphrase-derived key: safe to store with other backups."""
    salt = secrets.token_bytes(16)
    nonce = secrets.token_bytes(_NONCE)
    body = json.dumps({"keys": [_record_doc(r) for r in records]}).encode()
    ciphertext = AESGCM(_derive(passphrase, salt)).encrypt(nonce, body, BACKUP_FORMAT.encode())
    doc = {
        "format": BACKUP_FORMAT,
        "kdf": {"name": "scrypt", "salt": _b64e(salt), **_SCRYPT},
        "cipher": "A256GCM",
        "nonce": _b64e(nonce),
        "ciphertext": _b64e(ciphertext),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def import_backup(data: bytes, passphrase: str) -> list[KeyRecord]:
    """The key records of a backup; `KeyVaultError` for another format, a wrong passphrase or tampering."""
    try:
        doc = json.loads(data)
        if doc.get("format") != BACKUP_FORMAT:
            raise KeyVaultError(f"not a {BACKUP_FORMAT} backup")
        kdf = doc["kdf"]
        key = Scrypt(salt=_b64d(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
        derived = key.derive(passphrase.encode())
        body = AESGCM(derived).decrypt(_b64d(doc["nonce"]), _b64d(doc["ciphertext"]), BACKUP_FORMAT.encode())
    except InvalidTag:
        raise KeyVaultError("the backup does not open with this passphrase (or was altered)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyVaultError(f"unreadable key backup: {exc}") from None
    return [
        KeyRecord(
            kid=k["kid"],
            private_jwk=k["private_jwk"],
            created_at=datetime.fromisoformat(k["created_at"]),
            active=bool(k["active"]),
            compromised_at=datetime.fromisoformat(k["compromised_at"]) if k.get("compromised_at") else None,
        )
        for k in json.loads(body)["keys"]
    ]
