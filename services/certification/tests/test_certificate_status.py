"""The certificate status machine (active ⇄ suspended, active|suspended → revoked, final) and the W3C Bitstring
Status Lists it drives: pure rules, then use cases on the in-memory unit of work."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from iioe.events import CertificateIssued, CertificateReinstated, CertificateRevoked, CertificateSuspended
from services.certification import cli
from services.certification.credentials import (
    KeyRing,
    bit_is_set,
    decode_status_list,
    encode_status_list,
    sign_credential,
    status_entry,
    verify_signature,
    verify_status_list,
)
from services.certification.credentials.status_list import build_status_list_claims
from services.certification.domain import (
    Certificate,
    CertificationError,
    Revocation,
    certificate_id_for,
    recognize,
    reinstate,
    revoke,
    status_bits,
    suspend,
)
from services.certification.reference import builtin_catalogue
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import (
    Certification,
    ReinstateCertificate,
    RevokeCertificate,
    SuspendCertificate,
)

AI = "ai-in-higher-education"
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
CATALOGUE = builtin_catalogue()
URL = "https://cert.example.org"


def certificate() -> Certificate:
    courses = CATALOGUE.programme(AI).course_ids
    return Certificate(certificate_id_for("edu-1", AI), "edu-1", "must", AI, courses, 3, T0, "kid", "jws")


def suspended(cert: Certificate, reason: str | None = "inquiry") -> Certificate:
    change, _ = suspend(cert, reason, T0)
    return replace(cert, last_change=change)


# --- the rules -------------------------------------------------------------------------------------------------


def test_a_new_certificate_is_active_with_no_bits_set() -> None:
    cert = certificate()
    assert cert.status == "active" and cert.suspension is None
    assert status_bits(cert) == {"revocation": False, "suspension": False}


def test_suspending_an_active_certificate_suspends_it_once() -> None:
    change, new = suspend(certificate(), "under inquiry", T0, "operator")
    assert new and (change.action, change.seq, change.reason, change.actor) == (
        "suspended",
        1,
        "under inquiry",
        "operator",
    )
    cert = replace(certificate(), last_change=change)
    assert cert.status == "suspended" and status_bits(cert) == {"revocation": False, "suspension": True}

    again, new_again = suspend(cert, "another reason", T0 + timedelta(hours=1))
    assert not new_again and again == change


def test_reinstating_a_suspended_certificate_makes_it_active_and_a_repeat_is_the_same_reinstatement() -> None:
    cert = suspended(certificate())
    change, new = reinstate(cert, None, T0 + timedelta(days=1), "operator")
    assert new and (change.action, change.seq) == ("reinstated", 2)
    cert = replace(cert, last_change=change)
    assert cert.status == "active" and status_bits(cert) == {"revocation": False, "suspension": False}

    again, new_again = reinstate(cert, "again", T0 + timedelta(days=2))
    assert not new_again and again == change


def test_a_reinstated_certificate_can_be_suspended_again_with_the_next_number() -> None:
    cert = suspended(certificate())
    back, _ = reinstate(cert, None, T0)
    change, new = suspend(replace(cert, last_change=back), "second inquiry", T0)
    assert new and change.seq == 3 and change.action == "suspended"


def test_reinstating_a_certificate_never_suspended_is_a_conflict() -> None:
    with pytest.raises(CertificationError) as refused:
        reinstate(certificate(), None, T0)
    assert refused.value.code == "certificate_not_suspended"


@pytest.mark.parametrize("start", ["active", "suspended"])
def test_revoking_is_allowed_from_active_and_suspended_and_is_final(start: str) -> None:
    cert = certificate() if start == "active" else suspended(certificate())
    revocation, new = revoke(cert, "misconduct", T0, "operator")
    assert new and revocation.actor == "operator"
    revoked = replace(cert, revocation=revocation)
    assert revoked.status == "revoked" and revoked.suspension is None
    assert status_bits(revoked) == {"revocation": True, "suspension": False}
    again, new_again = revoke(revoked, "other", T0 + timedelta(days=1))
    assert not new_again and again == revocation


@pytest.mark.parametrize("rule", [suspend, reinstate])
@pytest.mark.parametrize("start", ["active", "suspended"])
def test_a_revoked_certificate_can_be_neither_suspended_nor_reinstated(rule, start: str) -> None:
    cert = certificate() if start == "active" else suspended(certificate())
    revoked = replace(cert, revocation=Revocation(cert.certificate_id, "fraud", T0))
    with pytest.raises(CertificationError) as refused:
        rule(revoked, None, T0)
    assert refused.value.code == "certificate_revoked"


def test_a_suspended_certificate_transfers_no_credits() -> None:
    with pytest.raises(CertificationError) as refused:
        recognize(suspended(certificate()), "num", "msc-edu", None, existing=None, at=T0)
    assert refused.value.code == "certificate_suspended"


# --- the bitstring ----------------------------------------------------------------------------------------------


def test_bit_i_is_the_i_mod_8_most_significant_bit_of_byte_i_div_8() -> None:
    encoded = encode_status_list(131_072, [0, 9, 131_071])
    assert encoded.startswith("u") and "=" not in encoded
    raw = gzip.decompress(base64.urlsafe_b64decode(encoded[1:] + "=" * (-len(encoded[1:]) % 4)))
    assert len(raw) == 16_384
    assert raw[0] == 0b1000_0000 and raw[1] == 0b0100_0000 and raw[-1] == 0b0000_0001
    assert sum(bin(b).count("1") for b in raw) == 3
    bits = decode_status_list(encoded)
    assert [i for i in (0, 1, 8, 9, 131_070, 131_071) if bit_is_set(bits, i)] == [0, 9, 131_071]


def test_the_encoding_is_deterministic_and_refuses_indexes_outside_the_list() -> None:
    assert encode_status_list(131_072, [5, 7]) == encode_status_list(131_072, [7, 5])
    with pytest.raises(ValueError):
        encode_status_list(131_072, [131_072])
    with pytest.raises(ValueError):
        decode_status_list("u!!not-base64")


def test_a_signed_status_list_verifies_against_the_jwks_and_a_tampered_one_does_not() -> None:
    ring = KeyRing.generate(T0)
    claims = build_status_list_claims(
        list_url=f"{URL}/status/revocation-1",
        purpose="revocation",
        size=131_072,
        set_indexes=[42],
        issuer_id="urn:iioe:issuer:test",
        valid_from=T0,
    )
    token = sign_credential(claims, ring)
    listed = verify_status_list(token, ring.jwks(), issuer="urn:iioe:issuer:test")
    assert (listed.purpose, listed.list_url) == ("revocation", f"{URL}/status/revocation-1")
    assert listed.is_set(42) and not listed.is_set(41)
    _, _, payload = verify_signature(token, ring.jwks())
    assert payload["vc"]["type"] == ["VerifiableCredential", "BitstringStatusListCredential"]
    assert payload["vc"]["credentialSubject"]["type"] == "BitstringStatusList"

    header, body, signature = token.split(".")
    with pytest.raises(Exception, match="signature"):
        verify_status_list(f"{header}.{body[:-4]}AAAA.{signature}", ring.jwks())


def test_a_status_entry_names_its_list_purpose_and_index_as_a_string() -> None:
    assert status_entry(f"{URL}/status/suspension-1", "suspension", 7) == {
        "id": f"{URL}/status/suspension-1#7",
        "type": "BitstringStatusListEntry",
        "statusPurpose": "suspension",
        "statusListIndex": "7",
        "statusListCredential": f"{URL}/status/suspension-1",
    }


# --- use cases ---------------------------------------------------------------------------------------------------

_ids = itertools.count()


class World:
    def __init__(self, draw: Callable[[int], int] | None = None) -> None:
        self.uow = FakeUnitOfWork()
        draw_index = draw or random.Random(7).randrange
        self.service = Certification(self.uow, CATALOGUE, {"must": {}}, public_url=URL, draw_index=draw_index)

    async def certify(self, educator: str) -> CertificateIssued:
        from iioe.events import CourseCompleted, EducatorRegistered
        from services.certification.usecases import MessageOrigin

        await self.service.on_educator_registered(
            f"reg-{next(_ids)}",
            EducatorRegistered(
                educator_id=educator, institution="must", language="en", role="educator", registered_at=T0
            ),
        )
        origin = MessageOrigin("iioe.events.must.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
        for course in CATALOGUE.programme(AI).course_ids:
            data = CourseCompleted(
                educator_id=educator, institution="must", course_id=course, score=90, completed_at=T0
            )
            await self.service.on_course_completed(f"done-{next(_ids)}", data, origin)
        [issued] = [
            e
            for e in self.uow.events_of(CertificateIssued)
            if isinstance(e, CertificateIssued) and e.educator_id == educator
        ]
        return issued

    async def bits(self, certificate_id: str) -> dict[str, bool]:
        """The certificate's bits as a verifier sees them: decoded from the signed list credentials."""
        ring = await self.service.keyring()
        out: dict[str, bool] = {}
        for entry in await self.service.status_entries(certificate_id):
            signed = await self.service.signed_status_list(entry.list_id)
            out[entry.purpose] = verify_status_list(signed.token, ring.jwks()).is_set(entry.index)
        return out

    def staged(self) -> list[tuple[str, str | None]]:
        return [
            (type(e.data).__name__, e.actor) for e in self.uow.state.events if type(e.data) is not CertificateIssued
        ]


async def test_every_new_credential_carries_a_revocation_and_a_suspension_entry() -> None:
    world = World()
    issued = await world.certify("edu-1")
    _, _, claims = verify_signature(issued.credential, (await world.service.keyring()).jwks())
    entries = claims["vc"]["credentialStatus"]
    assert [e["statusPurpose"] for e in entries] == ["revocation", "suspension"]
    for entry in entries:
        assert entry["type"] == "BitstringStatusListEntry"
        assert entry["statusListCredential"] == f"{URL}/status/{entry['statusPurpose']}-1"
        assert 0 <= int(entry["statusListIndex"]) < 131_072
    stored = {e.purpose: e.index for e in await world.service.status_entries(issued.certificate_id)}
    assert stored == {e["statusPurpose"]: int(e["statusListIndex"]) for e in entries}
    achievement = claims["vc"]["credentialSubject"]["achievement"]
    assert achievement["criteria"]["id"] == f"{URL}/programmes/{AI}/criteria"
    assert await world.bits(issued.certificate_id) == {"revocation": False, "suspension": False}


async def test_indexes_are_random_and_never_reused_even_when_draws_collide() -> None:
    draws = iter([5, 5, 5, 9, 5, 9, 11, 12])  # second certificate draws taken indexes first
    world = World(draw=lambda n: next(draws))
    a = await world.certify("edu-a")
    b = await world.certify("edu-b")
    index = {
        (cert, e.purpose): e.index
        for cert in (a.certificate_id, b.certificate_id)
        for e in await world.service.status_entries(cert)
    }
    assert index == {
        (a.certificate_id, "revocation"): 5,
        (a.certificate_id, "suspension"): 5,
        (b.certificate_id, "revocation"): 9,
        (b.certificate_id, "suspension"): 9,
    }


async def test_suspend_reinstate_revoke_flip_the_bits_and_emit_events_with_the_actor() -> None:
    world = World()
    cert = (await world.certify("edu-1")).certificate_id
    other = (await world.certify("edu-2")).certificate_id

    change, new = await world.service.suspend(SuspendCertificate(cert, "inquiry", actor="ops-alice"))
    assert new and change.action == "suspended"
    assert await world.bits(cert) == {"revocation": False, "suspension": True}
    assert (await world.service.certificate(cert))[0].status == "suspended"
    assert (await world.service.verify((await world.service.certificate(cert))[0].credential)).status == "suspended"

    again, new_again = await world.service.suspend(SuspendCertificate(cert, "again", actor="ops-bob"))
    assert not new_again and again == change

    await world.service.reinstate(ReinstateCertificate(cert, actor="ops-alice"))
    assert await world.bits(cert) == {"revocation": False, "suspension": False}
    _, repeated = await world.service.reinstate(ReinstateCertificate(cert, actor="ops-alice"))
    assert not repeated

    await world.service.suspend(SuspendCertificate(cert, None, actor="ops-alice"))
    await world.service.revoke(RevokeCertificate(cert, "fraud", actor="ops-carol"))
    assert await world.bits(cert) == {"revocation": True, "suspension": False}
    assert await world.bits(other) == {"revocation": False, "suspension": False}

    assert world.staged() == [
        ("CertificateSuspended", "ops-alice"),
        ("CertificateReinstated", "ops-alice"),
        ("CertificateSuspended", "ops-alice"),
        ("CertificateRevoked", "ops-carol"),
    ]
    ids = [e.event_id for e in world.uow.state.events if type(e.data) is not CertificateIssued]
    assert ids == [
        f"certificate-suspended:{cert}:1",
        f"certificate-reinstated:{cert}:2",
        f"certificate-suspended:{cert}:3",
        f"certificate-revoked:{cert}",
    ]
    [suspension, *_] = world.uow.events_of(CertificateSuspended)
    assert isinstance(suspension, CertificateSuspended) and suspension.reason == "inquiry"
    assert len(world.uow.events_of(CertificateReinstated)) == 1 and len(world.uow.events_of(CertificateRevoked)) == 1


async def test_illegal_moves_are_refused_and_change_nothing() -> None:
    world = World()
    cert = (await world.certify("edu-1")).certificate_id
    with pytest.raises(CertificationError) as not_suspended:
        await world.service.reinstate(ReinstateCertificate(cert))
    assert not_suspended.value.code == "certificate_not_suspended"
    await world.service.revoke(RevokeCertificate(cert, "fraud"))
    events_before = list(world.uow.state.events)
    for action in (
        world.service.suspend(SuspendCertificate(cert)),
        world.service.reinstate(ReinstateCertificate(cert)),
    ):
        with pytest.raises(CertificationError) as refused:
            await action
        assert refused.value.code == "certificate_revoked"
    with pytest.raises(CertificationError) as unknown:
        await world.service.suspend(SuspendCertificate("cert-nope"))
    assert unknown.value.code == "certificate_not_found"
    assert world.uow.state.events == events_before


async def test_an_unchanged_list_signs_to_the_same_bytes_and_a_flip_changes_its_etag() -> None:
    world = World()
    cert = (await world.certify("edu-1")).certificate_id
    first = await world.service.signed_status_list("suspension-1")
    assert (await world.service.signed_status_list("suspension-1")).etag == first.etag
    await world.service.suspend(SuspendCertificate(cert))
    assert (await world.service.signed_status_list("suspension-1")).etag != first.etag
    with pytest.raises(CertificationError) as unknown:
        await world.service.signed_status_list("revocation-99")
    assert unknown.value.code == "status_list_not_found"


def test_a_list_smaller_than_the_spec_minimum_is_refused() -> None:
    with pytest.raises(ValueError):
        Certification(FakeUnitOfWork(), CATALOGUE, {}, status_list_size=1024)


async def test_iioe_verify_checks_the_status_offline_from_cached_list_files(tmp_path: Path) -> None:
    world = World()
    issued = await world.certify("edu-1")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps((await world.service.keyring()).jwks()))

    async def cache_lists() -> list[str]:
        files = []
        for list_id in ("revocation-1", "suspension-1"):
            path = tmp_path / f"{list_id}.jwt"
            path.write_text((await world.service.signed_status_list(list_id)).token)
            files.append(str(path))
        return files

    def verify(files: list[str]) -> cli.Report:
        return cli.check(issued.credential, str(jwks_file), None, status_lists=files)

    report = verify(await cache_lists())
    assert report.status == "valid" and report.exit_code == 0
    assert "status:      revocation: clear" in "\n".join(report.lines)

    await world.service.suspend(SuspendCertificate(issued.certificate_id, "inquiry"))
    report = verify(await cache_lists())
    assert report.status == "suspended" and report.exit_code == 1 and report.lines[0] == "SUSPENDED (status list)"

    await world.service.revoke(RevokeCertificate(issued.certificate_id, "fraud"))
    assert verify(await cache_lists()).status == "revoked"

    assert verify([str(tmp_path / "revocation-1.jwt")]).status == "revoked"
    only_suspension = verify([str(tmp_path / "suspension-1.jwt")])  # a revocation clears the suspension bit
    assert only_suspension.status == "valid" and only_suspension.lines[0] == "VALID signature, status partly checked"
    assert any("revocation: not checked" in line for line in only_suspension.lines)

    forged = tmp_path / "forged.jwt"
    other_ring = KeyRing.generate(T0)
    claims = build_status_list_claims(
        list_url=f"{URL}/status/revocation-1",
        purpose="revocation",
        size=131_072,
        set_indexes=[],
        issuer_id=world.service.issuer.id,
        valid_from=T0,
    )
    forged.write_text(sign_credential(claims, other_ring))
    with pytest.raises(cli.CheckError, match="does not verify"):
        verify([str(forged)])
