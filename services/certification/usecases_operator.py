"""Certification use cases for operator actions: revoke, suspend, reinstate, recognise credits, rotate the key."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from iioe.events import CertificateReinstated, CertificateRevoked, CertificateSuspended
from iioe.runtime.logging import get_logger
from services.certification import keys
from services.certification.credentials import KeyRing
from services.certification.domain import (
    Certificate,
    CertificationError,
    Recognition,
    Revocation,
    StatusChange,
    recognition_id_for,
    recognize,
    reinstate,
    revoke,
    status_bits,
    suspend,
)
from services.certification.usecases_base import CertificationBase, load_certificate, record_recognition

log = get_logger(__name__)


@dataclass(frozen=True)
class RevokeCertificate:
    certificate_id: str
    reason: str
    actor: str | None = None
    """Who asked (the token's actor): carried into the event and kept with the revocation."""


@dataclass(frozen=True)
class SuspendCertificate:
    certificate_id: str
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class ReinstateCertificate:
    certificate_id: str
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class RecognizeCredits:
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    credits: float | None = None
    """Default: all of the certificate's credits."""


class OperatorActions(CertificationBase):
    """Changes an operator (or a receiving institution) asks for, each emitting its event once."""

    # --- operator actions ----------------------------------------------------------------------------

    async def revoke(self, command: RevokeCertificate) -> tuple[Revocation, bool]:
        """Revoke once (active or suspended) and emit CertificateRevoked; a repeat returns the first revocation."""
        async with self._uow.transaction() as tx:
            certificate = await load_certificate(tx, command.certificate_id, for_update=True)
            revocation, new = revoke(certificate, command.reason, self._clock(), command.actor)
            if not new:
                return revocation, False
            await tx.certificates.add_revocation(revocation)
            await tx.status_lists.set_bits(
                certificate.certificate_id,
                status_bits(replace(certificate, revocation=revocation)),
                revocation.revoked_at,
            )
            await tx.outbox.add_event(
                CertificateRevoked(
                    certificate_id=certificate.certificate_id,
                    educator_id=certificate.educator_id,
                    institution=certificate.institution,
                    reason=revocation.reason,
                    revoked_at=revocation.revoked_at,
                ),
                subject=certificate.educator_id,
                event_id=f"certificate-revoked:{certificate.certificate_id}",
                time=revocation.revoked_at,
                actor=command.actor,
            )
        log.info(
            "certificate revoked",
            certificate_id=certificate.certificate_id,
            educator_id=certificate.educator_id,
            actor=command.actor,
        )
        return revocation, True

    async def suspend(self, command: SuspendCertificate) -> tuple[StatusChange, bool]:
        """active → suspended, emitting CertificateSuspended; suspending again returns the suspension in force."""
        return await self._change_status(command.certificate_id, command.reason, command.actor, suspend)

    async def reinstate(self, command: ReinstateCertificate) -> tuple[StatusChange, bool]:
        """suspended → active, emitting CertificateReinstated; reinstating again returns that reinstatement."""
        return await self._change_status(command.certificate_id, command.reason, command.actor, reinstate)

    async def _change_status(
        self,
        certificate_id: str,
        reason: str | None,
        actor: str | None,
        rule: Callable[[Certificate, str | None, datetime, str | None], tuple[StatusChange, bool]],
    ) -> tuple[StatusChange, bool]:
        async with self._uow.transaction() as tx:
            certificate = await load_certificate(tx, certificate_id, for_update=True)
            change, new = rule(certificate, reason, self._clock(), actor)
            if not new:
                return change, False
            await tx.certificates.add_status_change(change)
            await tx.status_lists.set_bits(
                certificate_id, status_bits(replace(certificate, last_change=change)), change.at
            )
            event = CertificateSuspended if change.action == "suspended" else CertificateReinstated
            await tx.outbox.add_event(
                event(
                    certificate_id=certificate_id,
                    educator_id=certificate.educator_id,
                    institution=certificate.institution,
                    reason=change.reason,
                    at=change.at,
                ),
                subject=certificate.educator_id,
                event_id=f"certificate-{change.action}:{certificate_id}:{change.seq}",
                time=change.at,
                actor=actor,
            )
        log.info(f"certificate {change.action}", certificate_id=certificate_id, seq=change.seq, actor=actor)
        return change, True

    async def recognize(self, command: RecognizeCredits) -> tuple[Recognition, bool]:
        """Record that a receiving institution accepts (some of) a certificate's credits; emit CreditRecognized."""
        if command.receiving_institution not in self.institutions:
            raise CertificationError(
                "unknown_institution", f"institution {command.receiving_institution!r} is not in the catalogue"
            )
        async with self._uow.transaction() as tx:
            certificate = await load_certificate(tx, command.certificate_id, for_update=True)
            recognition_id = recognition_id_for(
                certificate.certificate_id, command.receiving_institution, command.receiving_programme
            )
            recognition, new = recognize(
                certificate,
                command.receiving_institution,
                command.receiving_programme,
                command.credits,
                existing=await tx.certificates.get_recognition(recognition_id),
                at=self._clock(),
            )
            if not new:
                return recognition, False
            await record_recognition(tx, certificate, recognition)
        log.info("credits recognised", recognition_id=recognition.recognition_id, certificate_id=command.certificate_id)
        return recognition, True

    async def rotate_key(self) -> KeyRing:
        async with self._uow.transaction() as tx:
            return await keys.rotate_key(tx.keys)
