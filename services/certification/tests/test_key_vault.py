"""Signing keys at rest, compromised keys, and key backups: the rules, on the in-memory unit of work."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iioe.events import CertificateIssued, CourseCompleted, EducatorRegistered
from services.certification import keys
from services.certification.credentials import CredentialError, CredentialErrorReason, KeyRecord, verify_credential
from services.certification.key_vault import (
    KeyVault,
    KeyVaultError,
    SealedKey,
    export_backup,
    import_backup,
    load_or_create_kek,
)
from services.certification.reference import builtin_catalogue
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import Certification, MessageOrigin

AI = "ai-in-higher-education"
CATALOGUE = builtin_catalogue()
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def certify(service: Certification, educator: str) -> CertificateIssued:
    await service.on_educator_registered(
        f"reg-{educator}",
        EducatorRegistered(educator_id=educator, institution="must", language="en", role="educator", registered_at=T0),
    )
    origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
    for course in CATALOGUE.programme(AI).course_ids:
        data = CourseCompleted(educator_id=educator, institution="must", course_id=course, score=90, completed_at=T0)
        await service.on_course_completed(f"done-{educator}-{course}", data, origin)
    uow = service._uow
    assert isinstance(uow, FakeUnitOfWork)
    return next(
        e for e in uow.events_of(CertificateIssued) if isinstance(e, CertificateIssued) and e.educator_id == educator
    )


# --- the key-encryption key ----------------------------------------------------------------------------------


def test_the_kek_file_is_created_0600_once_and_read_back(tmp_path: Path) -> None:
    first = load_or_create_kek(value=None, file=None, data_dir=tmp_path)
    path = tmp_path / "certification" / "kek"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(first) == 32
    assert load_or_create_kek(value=None, file=None, data_dir=tmp_path) == first


def test_a_kek_from_the_environment_wins_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    value = "A" * 43  # base64url of 32 bytes
    assert load_or_create_kek(value=value, file=None, data_dir=tmp_path) == bytes(32)
    assert not (tmp_path / "certification").exists()
    with pytest.raises(KeyVaultError, match="32 bytes"):
        load_or_create_kek(value="c2hvcnQ", file=None, data_dir=tmp_path)
    padded = base64.b64encode(bytes(range(224, 256))).decode()  # `openssl rand -base64 32`: '+', '/', '='
    assert "/" in padded and load_or_create_kek(value=padded, file=None, data_dir=tmp_path) == bytes(range(224, 256))
    secret = tmp_path / "kek-secret"
    secret.write_text(padded + "\n")
    assert load_or_create_kek(value=None, file=secret, data_dir=tmp_path) == bytes(range(224, 256))


def test_a_sealed_key_opens_only_under_its_kid_and_its_kek() -> None:
    vault = KeyVault(os.urandom(32))
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "x", "d": "secret-d", "kid": "k1"}
    sealed = vault.seal("k1", jwk)
    assert b"secret-d" not in sealed.ciphertext and vault.open("k1", sealed) == jwk
    with pytest.raises(KeyVaultError, match="does not open"):
        vault.open("k2", sealed)  # moved under another kid
    with pytest.raises(KeyVaultError, match="sealed with key-encryption key"):
        KeyVault(os.urandom(32)).open("k1", sealed)
    with pytest.raises(KeyVaultError, match="does not open"):
        vault.open("k1", SealedKey(sealed.ciphertext[:-1] + b"\0", sealed.kek_id))


# --- backups ------------------------------------------------------------------------------------------------


async def test_a_backup_round_trips_only_with_its_passphrase() -> None:
    uow = FakeUnitOfWork()
    async with uow.transaction() as tx:
        ring = await keys.rotate_key(tx.keys)
        await tx.keys.mark_compromised(ring.kids[-1], T0)
        records = await tx.keys.records()
    backup = export_backup(records, "correct horse")
    assert b'"d"' not in backup and records[0].kid.encode() not in backup
    assert import_backup(backup, "correct horse") == records
    with pytest.raises(KeyVaultError, match="passphrase"):
        import_backup(backup, "wrong")


async def test_import_into_an_empty_service_makes_the_backups_active_key_sign() -> None:
    source = FakeUnitOfWork()
    async with source.transaction() as tx:
        await keys.rotate_key(tx.keys)
        records = await tx.keys.records()
    target = FakeUnitOfWork()
    async with target.transaction() as tx:
        added = await keys.import_keys(tx.keys, records)
        again = await keys.import_keys(tx.keys, records)
        ring = await keys.ensure_keyring(tx.keys)
    active = next(r for r in records if r.active)
    assert sorted(added) == sorted(r.kid for r in records) and again == []
    assert ring.active_kid == active.kid


async def test_import_next_to_an_active_key_adds_retired_keys_only() -> None:
    source, target = FakeUnitOfWork(), FakeUnitOfWork()
    async with source.transaction() as tx:
        records = list((await keys.ensure_keyring(tx.keys)).records())
    async with target.transaction() as tx:
        own = (await keys.ensure_keyring(tx.keys)).active_kid
        await keys.import_keys(tx.keys, records)
        ring = await keys.ensure_keyring(tx.keys)
    assert ring.active_kid == own and set(ring.kids) == {own, records[0].kid}


async def test_import_refuses_a_record_that_is_not_an_ed25519_private_key() -> None:
    bogus = KeyRecord("k", {"kty": "oct", "k": "AAAA", "kid": "k"}, T0, True)
    async with FakeUnitOfWork().transaction() as tx:
        with pytest.raises(ValueError, match="Ed25519"):
            await keys.import_keys(tx.keys, [bogus])


# --- compromised keys -----------------------------------------------------------------------------------------


async def test_a_compromised_key_distrusts_what_it_signed_after_the_compromise_only() -> None:
    clock = Clock()
    service = Certification(FakeUnitOfWork(), CATALOGUE, {"must": {}}, clock=clock)
    before = await certify(service, "edu-before")
    kid = (await service.keyring()).active_kid
    clock.now = T0 + timedelta(hours=2)
    after = await certify(service, "edu-after")  # e.g. the attacker's, or ours after the leak: not trusted

    ring = await service.retire_compromised_key(kid, since=T0 + timedelta(hours=1))
    assert ring.active_kid != kid  # signing continues with a new key

    assert (await service.verify(before.credential)).status == "valid"
    verdict = await service.verify(after.credential)
    assert (verdict.status, verdict.reason) == ("invalid", "key_compromised")
    jwks = await service.jwks()
    marked = next(k for k in jwks["keys"] if k["kid"] == kid)
    assert marked["compromised_since"].startswith("2026-03-01T10:00") and "d" not in marked

    clock.now = T0 + timedelta(hours=3)
    fresh = await certify(service, "edu-fresh")
    assert (await service.verify(fresh.credential)).status == "valid"


async def test_offline_verification_honours_the_jwks_mark() -> None:
    clock = Clock()
    service = Certification(FakeUnitOfWork(), CATALOGUE, {"must": {}}, clock=clock)
    clock.now = datetime.now(UTC).replace(microsecond=0)
    issued = await certify(service, "edu-1")
    kid = (await service.keyring()).active_kid
    await service.retire_compromised_key(kid, since=clock.now - timedelta(minutes=1))
    with pytest.raises(CredentialError) as caught:
        verify_credential(issued.credential, await service.jwks(), issuer=service.issuer.id)
    assert caught.value.reason is CredentialErrorReason.KEY_COMPROMISED


async def test_retiring_an_unknown_kid_is_not_found() -> None:
    service = Certification(FakeUnitOfWork(), CATALOGUE, {"must": {}})
    with pytest.raises(Exception, match="no signing key"):
        await service.retire_compromised_key("nope")
