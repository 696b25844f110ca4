"""Certification use cases: apply registrations and completions, issue, revoke, recognise, verify.

Every change to one educator runs in one transaction under that educator's lock, with the inbox claim
and the outgoing events (outbox) in the same transaction: replicas, redeliveries and replays then all
reach the same single certificate per (educator, programme).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import asyncpg

from iioe.events import (
    CertificateIssued,
    CertificateRevoked,
    CourseCompleted,
    CreditRecognized,
    EducatorRegistered,
)
from iioe.events.common import Language
from iioe.reasons import Reason
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from iioe.runtime.inbox import claim
from iioe.runtime.logging import get_logger
from iioe.runtime.outbox import enqueue_event
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import EVENTS_STREAM
from services.certification import keys, store
from services.certification.credentials import (
    CredentialError,
    KeyRing,
    build_credential_claims,
    sign_credential,
    verify_credential,
)
from services.certification.domain import (
    Programme,
    ProgrammeCatalogue,
    ProgrammeProgress,
    certificate_id_for,
    evaluate,
    programmes_newly_earned,
    recognition_id_for,
)
from services.certification.settings import CertificationSettings

log = get_logger(__name__)

INBOX_CONSUMER = "certification"
"""Inbox key shared by every durable of this service, so a replay under a new consumer name is still skipped."""


class CertificationError(Exception):
    """A request that cannot be done; `code` is machine-readable (http.py maps it to a status)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Verification:
    """Outcome of verifying a credential: `valid`, `revoked` or `invalid` (with a reason code)."""

    status: Literal["valid", "revoked", "invalid"]
    reason: str | None = None
    detail: str | None = None
    certificate: store.Certificate | None = None
    issuer_id: str | None = None
    kid: str | None = None


@dataclass(frozen=True)
class EducatorProgress:
    educator: store.Educator
    completions: dict[str, store.Completion]
    certificates: list[store.Certificate]
    programmes: list[ProgrammeProgress]
    pending_completions: int


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _held_and_revoked(certificates: list[store.Certificate]) -> tuple[set[str], set[str]]:
    active = {c.programme_id for c in certificates if c.revocation is None}
    revoked = {c.programme_id for c in certificates if c.revocation is not None}
    return active, revoked


class Certification:
    """The service's behaviour; the consumer handlers and HTTP routes only translate to and from it."""

    def __init__(
        self,
        runtime: ServiceRuntime,
        settings: CertificationSettings,
        catalogue: ProgrammeCatalogue,
        institutions: dict[str, Any],
        durable: str,
    ) -> None:
        self._runtime = runtime
        self.settings = settings
        self.catalogue = catalogue
        self.institutions = institutions
        self._durable = durable

    @property
    def pool(self) -> asyncpg.Pool:
        return self._runtime.pool

    # --- events in -----------------------------------------------------------------------------------

    async def on_educator_registered(self, received: ReceivedEvent) -> None:
        """Record the educator, then apply (or reject) completions that arrived before, and issue what is earned."""
        data = cast(EducatorRegistered, received.event.data)
        async with self._runtime.transaction() as conn:
            await store.lock_educator(conn, data.educator_id)
            if not await claim(conn, INBOX_CONSUMER, received.id):
                return
            educator = store.Educator(data.educator_id, data.institution, data.language, data.role, data.registered_at)
            if not await store.insert_educator(conn, educator):
                known = await store.get_educator(conn, data.educator_id)
                if known is not None and known.institution != data.institution:
                    log.warning(
                        "registration for another institution ignored",
                        educator_id=data.educator_id,
                        known_institution=known.institution,
                    )
                return
            for pending in await store.take_pending(conn, educator.educator_id):
                if pending.institution != educator.institution:
                    await self._reject_pending(conn, pending, educator)
                    continue
                await store.record_completion(
                    conn, pending.educator_id, pending.course_id, pending.score, pending.completed_at
                )
                log.info("pending completion applied", educator_id=educator.educator_id, course_id=pending.course_id)
            await self._issue_earned(conn, educator)

    async def on_course_completed(self, received: ReceivedEvent) -> None:
        """Keep the best score; park it if the educator is not registered yet; issue what becomes earned."""
        data = cast(CourseCompleted, received.event.data)
        if not self.catalogue.is_known_course(data.course_id):
            raise Unprocessable(Reason.UNKNOWN_COURSE, f"course {data.course_id!r} is not in the programme catalogue")
        async with self._runtime.transaction() as conn:
            await store.lock_educator(conn, data.educator_id)
            if not await claim(conn, INBOX_CONSUMER, received.id):
                return
            educator = await store.get_educator(conn, data.educator_id)
            if educator is None:
                await store.add_pending(conn, await self._pending(received, data))
                log.info("completion pending registration", decision="pending", educator_id=data.educator_id)
                return
            if educator.institution != data.institution:
                raise Unprocessable(
                    Reason.INSTITUTION_MISMATCH,
                    f"educator {data.educator_id!r} is registered at {educator.institution!r},"
                    f" not {data.institution!r}",
                )
            await store.record_completion(conn, data.educator_id, data.course_id, data.score, data.completed_at)
            await self._issue_earned(conn, educator)

    async def _pending(self, received: ReceivedEvent, data: CourseCompleted) -> store.PendingCompletion:
        """Keep the original bytes in case the registration later disagrees."""
        return store.PendingCompletion(
            event_id=received.id,
            educator_id=data.educator_id,
            institution=data.institution,
            course_id=data.course_id,
            score=data.score,
            completed_at=data.completed_at,
            subject=received.subject,
            raw=received.data or received.event.to_json_bytes(),
            durable=self._durable,
            stream=received.stream or EVENTS_STREAM,
            stream_seq=received.stream_seq,
        )

    async def _reject_pending(
        self, conn: asyncpg.Connection, pending: store.PendingCompletion, educator: store.Educator
    ) -> None:
        detail = (
            f"educator {educator.educator_id!r} registered at {educator.institution!r}, but the completion"
            f" (held until registration) names {pending.institution!r}"
        )
        await store.stage_dead_letter(conn, pending, Reason.INSTITUTION_MISMATCH, detail, datetime.now(UTC))
        log.info(
            "pending completion rejected",
            decision="rejected",
            reason=str(Reason.INSTITUTION_MISMATCH),
            educator_id=educator.educator_id,
            completion_id=pending.event_id,
        )

    # --- issuing -------------------------------------------------------------------------------------

    async def _issue_earned(self, conn: asyncpg.Connection, educator: store.Educator) -> None:
        scores = {c.course_id: c.best_score for c in (await store.completions(conn, educator.educator_id)).values()}
        held, revoked = _held_and_revoked(await store.certificates_of(conn, educator.educator_id))
        earned = programmes_newly_earned(self.catalogue, scores, held, barred=revoked)
        if not earned:
            log.debug("progress recorded", educator_id=educator.educator_id)
            return
        keyring = await keys.ensure_keyring(conn)
        for programme in earned:
            await self._issue(conn, educator, programme, keyring)

    async def _issue(
        self, conn: asyncpg.Connection, educator: store.Educator, programme: Programme, keyring: KeyRing
    ) -> None:
        """Insert the certificate; only if the natural key was free, sign and emit CertificateIssued."""
        issued_at = _now()
        certificate_id = certificate_id_for(educator.educator_id, programme.id)
        try:
            claims = build_credential_claims(
                certificate_id=certificate_id,
                educator_id=educator.educator_id,
                programme=programme,
                issued_at=issued_at,
                issuer=self.settings.issuer,
                language=cast(Language, educator.language),
                credit_system=self.catalogue.credit_system,
            )
        except ValueError as exc:  # e.g. an e-mail address used as educator id: never put it in a credential
            raise Unprocessable(Reason.INVALID_DATA, f"cannot issue a credential: {exc}") from None
        certificate = store.Certificate(
            certificate_id=certificate_id,
            educator_id=educator.educator_id,
            institution=educator.institution,
            programme_id=programme.id,
            course_ids=programme.course_ids,
            credits=programme.credits,
            issued_at=issued_at,
            kid=keyring.active_kid,
            credential=sign_credential(claims, keyring),
        )
        if not await store.insert_certificate(conn, certificate):
            log.info("certificate already held", educator_id=educator.educator_id, programme_id=programme.id)
            return
        await enqueue_event(
            conn,
            CertificateIssued(
                certificate_id=certificate_id,
                educator_id=educator.educator_id,
                institution=educator.institution,
                programme_id=programme.id,
                course_ids=list(programme.course_ids),
                credits=programme.credits,
                issued_at=issued_at,
                credential=certificate.credential,
            ),
            source=self.settings.source,
            subject=educator.educator_id,
            event_id=f"certificate-issued:{certificate_id}",
            time=issued_at,
        )
        log.info(
            "certificate issued",
            decision="issued",
            certificate_id=certificate_id,
            educator_id=educator.educator_id,
            programme_id=programme.id,
            kid=keyring.active_kid,
        )
        self._runtime.metrics.certificate_issued(programme.id)

    # --- operator actions ----------------------------------------------------------------------------

    async def revoke(self, certificate_id: str, reason: str) -> tuple[store.Revocation, bool]:
        """Revoke once and emit CertificateRevoked; a repeated revoke returns the first revocation."""
        async with self._runtime.transaction() as conn:
            certificate = await store.get_certificate(conn, certificate_id, for_update=True)
            if certificate is None:
                raise CertificationError("certificate_not_found", f"no certificate {certificate_id!r}")
            if certificate.revocation is not None:
                return certificate.revocation, False
            revocation = store.Revocation(certificate_id, reason, _now())
            await store.insert_revocation(conn, revocation)
            await enqueue_event(
                conn,
                CertificateRevoked(
                    certificate_id=certificate_id,
                    educator_id=certificate.educator_id,
                    institution=certificate.institution,
                    reason=reason,
                    revoked_at=revocation.revoked_at,
                ),
                source=self.settings.source,
                subject=certificate.educator_id,
                event_id=f"certificate-revoked:{certificate_id}",
                time=revocation.revoked_at,
            )
        log.info("certificate revoked", certificate_id=certificate_id, educator_id=certificate.educator_id)
        return revocation, True

    async def recognize(
        self, certificate_id: str, receiving_institution: str, receiving_programme: str, credits: float | None
    ) -> tuple[store.Recognition, bool]:
        """Record that a receiving institution accepts (some of) a certificate's credits; emit CreditRecognized."""
        if receiving_institution not in self.institutions:
            raise CertificationError(
                "unknown_institution", f"institution {receiving_institution!r} is not in the catalogue"
            )
        async with self._runtime.transaction() as conn:
            certificate = await store.get_certificate(conn, certificate_id, for_update=True)
            if certificate is None:
                raise CertificationError("certificate_not_found", f"no certificate {certificate_id!r}")
            if certificate.revocation is not None:
                raise CertificationError("certificate_revoked", f"certificate {certificate_id!r} is revoked")
            amount = certificate.credits if credits is None else credits
            if amount > certificate.credits:
                raise CertificationError(
                    "credits_exceed_certificate",
                    f"{amount:g} credits requested, the certificate carries {certificate.credits:g}",
                )
            recognition_id = recognition_id_for(certificate_id, receiving_institution, receiving_programme)
            existing = await store.get_recognition(conn, recognition_id)
            if existing is not None:
                if existing.credits != amount:
                    raise CertificationError(
                        "recognition_conflict",
                        f"already recognised with {existing.credits:g} credits ({recognition_id})",
                    )
                return existing, False
            recognition = store.Recognition(
                recognition_id, certificate_id, receiving_institution, receiving_programme, amount, _now()
            )
            await store.insert_recognition(conn, recognition)
            await enqueue_event(
                conn,
                CreditRecognized(
                    recognition_id=recognition_id,
                    certificate_id=certificate_id,
                    educator_id=certificate.educator_id,
                    institution=certificate.institution,
                    receiving_institution=receiving_institution,
                    receiving_programme=receiving_programme,
                    credits=amount,
                    recognized_at=recognition.recognized_at,
                ),
                source=self.settings.source,
                subject=certificate.educator_id,
                event_id=f"credit-recognized:{recognition_id}",
                time=recognition.recognized_at,
            )
        log.info("credits recognised", recognition_id=recognition_id, certificate_id=certificate_id)
        return recognition, True

    async def rotate_key(self) -> KeyRing:
        async with self.pool.acquire() as conn, conn.transaction():
            return await keys.rotate_key(conn)

    # --- reads ---------------------------------------------------------------------------------------

    async def keyring(self) -> KeyRing:
        return await keys.load_keyring(self.pool)

    async def verify(self, token: str) -> Verification:
        """Signature and claims against our JWKS, then the certificate's status in the store."""
        keyring = await self.keyring()
        try:
            verified = verify_credential(token, keyring.jwks(), issuer=self.settings.issuer_id)
        except CredentialError as exc:
            return Verification("invalid", reason=str(exc.reason), detail=exc.detail)
        certificate = await store.get_certificate(self.pool, verified.certificate_id)
        if (
            certificate is None
            or certificate.educator_id != verified.educator_id
            or certificate.programme_id != verified.programme_id
        ):
            return Verification(
                "invalid", reason="unknown_certificate", detail="signed by us, but no such certificate is on record"
            )
        status: Literal["valid", "revoked"] = "revoked" if certificate.revocation else "valid"
        return Verification(
            status,
            reason=certificate.revocation.reason if certificate.revocation else None,
            certificate=certificate,
            issuer_id=verified.issuer_id,
            kid=verified.kid,
        )

    async def certificate(self, certificate_id: str) -> tuple[store.Certificate, list[store.Recognition]]:
        certificate = await store.get_certificate(self.pool, certificate_id)
        if certificate is None:
            raise CertificationError("certificate_not_found", f"no certificate {certificate_id!r}")
        return certificate, await store.recognitions_of(self.pool, certificate_id)

    async def certificates_of(self, educator_id: str) -> list[store.Certificate]:
        certificates = await store.certificates_of(self.pool, educator_id)
        if not certificates and await store.get_educator(self.pool, educator_id) is None:
            raise CertificationError("educator_not_found", f"no registered educator {educator_id!r}")
        return certificates

    async def progress(self, educator_id: str) -> EducatorProgress:
        educator = await store.get_educator(self.pool, educator_id)
        if educator is None:
            raise CertificationError("educator_not_found", f"no registered educator {educator_id!r}")
        completions = await store.completions(self.pool, educator_id)
        certificates = await store.certificates_of(self.pool, educator_id)
        held, _ = _held_and_revoked(certificates)
        scores = {course_id: c.best_score for course_id, c in completions.items()}
        programmes = [evaluate(p, scores, held) for p in self.catalogue.in_prerequisite_order()]
        pending = await store.count_pending(self.pool, educator_id)
        return EducatorProgress(educator, completions, certificates, programmes, pending)
