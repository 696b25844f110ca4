"""Certification use cases: apply registrations and completions, issue, revoke, recognise, verify.

They take plain commands and event data (never a NATS message or the runtime) and one unit-of-work
port (`ports.UnitOfWork`); the rules they apply live in `domain.py`. Every change to one educator runs in
one transaction under that educator's lock, with the inbox claim and the outgoing events in the same
transaction: replicas, redeliveries and replays then all reach the same single certificate per
(educator, programme).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from iioe.events import (
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CourseCompleted,
    CreditRecognized,
    EducatorRegistered,
)
from iioe.events.common import Language
from iioe.reasons import Reason
from iioe.runtime.logging import get_logger
from services.certification import keys
from services.certification.catalogue import Programme, ProgrammeCatalogue
from services.certification.credentials import (
    DEFAULT_ISSUER,
    CredentialError,
    IssuerProfile,
    KeyRing,
    build_credential_claims,
    build_status_list_claims,
    sign_credential,
    status_entry,
    verify_credential,
)
from services.certification.credentials.verification import compromised_since
from services.certification.domain import (
    STATUS_LIST_MIN_SIZE,
    STATUS_PURPOSES,
    Certificate,
    CertificationError,
    Completion,
    Educator,
    PendingCompletion,
    ProgrammeProgress,
    Recognition,
    Revocation,
    StatusChange,
    StatusEntry,
    StatusList,
    StatusPurpose,
    certificate_for,
    certificate_id_for,
    check_institution,
    programmes_to_issue,
    progress_of,
    recognition_id_for,
    recognize,
    record_attempt,
    reinstate,
    revoke,
    sort_pending,
    status_bits,
    status_list_id,
    status_list_is_full,
    suspend,
)
from services.certification.ports import Repositories, UnitOfWork

log = get_logger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- commands and inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageOrigin:
    """Where an event came from: kept with a parked completion, to dead-letter the original bytes later."""

    subject: str
    raw: bytes
    durable: str
    stream: str | None = None
    stream_seq: int | None = None


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


# --- outcomes -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """Outcome of verifying a credential: `valid`, `suspended`, `revoked` or `invalid` (with a reason code)."""

    status: Literal["valid", "suspended", "revoked", "invalid"]
    reason: str | None = None
    detail: str | None = None
    certificate: Certificate | None = None
    issuer_id: str | None = None
    kid: str | None = None


@dataclass(frozen=True)
class EducatorProgress:
    educator: Educator
    completions: dict[str, Completion]
    certificates: list[Certificate]
    programmes: list[ProgrammeProgress]
    pending_completions: int


@dataclass(frozen=True)
class SignedStatusList:
    """A status list credential as served: the VC-JWT, its ETag and when a bit last flipped."""

    status_list: StatusList
    token: str
    etag: str


class Certification:
    """The service's behaviour; the consumer handlers and HTTP routes only translate to and from it."""

    def __init__(
        self,
        uow: UnitOfWork,
        catalogue: ProgrammeCatalogue,
        institutions: Mapping[str, Any],
        *,
        issuer: IssuerProfile = DEFAULT_ISSUER,
        clock: Callable[[], datetime] = utc_now,
        on_issued: Callable[[str], None] | None = None,
        public_url: str = "http://127.0.0.1:8002",
        status_list_size: int = STATUS_LIST_MIN_SIZE,
        draw_index: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        """`public_url`: where this service is reached from outside (status list and page URLs in credentials).
        `draw_index(n)`: a random integer in [0, n), for status list indexes (unpredictable by default)."""
        if status_list_size < STATUS_LIST_MIN_SIZE or status_list_size % 8:
            raise ValueError(f"a status list holds at least {STATUS_LIST_MIN_SIZE} entries, a multiple of 8")
        self._uow = uow
        self._on_issued = on_issued
        """Told the programme id of each certificate issued (the composition root counts them as a metric)."""
        self.catalogue = catalogue
        self.institutions = institutions
        self.issuer = issuer
        self._clock = clock
        self.public_url = public_url.rstrip("/")
        self._status_list_size = status_list_size
        self._draw_index = draw_index

    # --- public URLs ---------------------------------------------------------------------------------

    def status_list_url(self, list_id: str) -> str:
        return f"{self.public_url}/status/{list_id}"

    def verification_url(self, certificate_id: str) -> str:
        return f"{self.public_url}/verify/{certificate_id}"

    def criteria_url(self, programme_id: str) -> str:
        return f"{self.public_url}/programmes/{programme_id}/criteria"

    # --- events in -----------------------------------------------------------------------------------

    async def on_educator_registered(self, event_id: str, data: EducatorRegistered, *, source: str = "") -> None:
        """Record the educator, then apply (or reject) completions that arrived before, and issue what is earned.

        `source` + `event_id` are the CloudEvent's identity (the inbox key)."""
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim(event_id, source=source):
                return
            educator = Educator(data.educator_id, data.institution, data.language, data.role, data.registered_at)
            if not await tx.progress.add_educator(educator):
                known = await tx.progress.get_educator(data.educator_id)
                if known is not None and known.institution != data.institution:
                    log.warning(
                        "registration for another institution ignored",
                        educator_id=data.educator_id,
                        known_institution=known.institution,
                    )
                return
            to_apply, to_reject = sort_pending(educator, await tx.progress.take_pending(educator.educator_id))
            for pending in to_reject:
                await self._reject_pending(tx, pending, educator)
            completions = await tx.progress.completions(educator.educator_id)
            for pending in to_apply:
                completions[pending.course_id] = record_attempt(
                    completions.get(pending.course_id), pending.course_id, pending.score, pending.completed_at
                )
                log.info("pending completion applied", educator_id=educator.educator_id, course_id=pending.course_id)
            for course_id in dict.fromkeys(p.course_id for p in to_apply):
                await tx.progress.save_completion(educator.educator_id, completions[course_id])
            await self._issue_earned(tx, educator, completions)

    async def on_course_completed(
        self, event_id: str, data: CourseCompleted, origin: MessageOrigin, *, source: str = ""
    ) -> None:
        """Keep the best attempt; park it if the educator is not registered yet; issue what becomes earned."""
        if not self.catalogue.is_known_course(data.course_id):
            raise CertificationError(
                Reason.UNKNOWN_COURSE, f"course {data.course_id!r} is not in the programme catalogue"
            )
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim(event_id, source=source):
                return
            educator = await tx.progress.get_educator(data.educator_id)
            if educator is None:
                await tx.progress.park(_pending(event_id, data, origin))
                log.info("completion pending registration", decision="pending", educator_id=data.educator_id)
                return
            check_institution(educator, data.institution)
            completions = await tx.progress.completions(data.educator_id)
            completion = record_attempt(completions.get(data.course_id), data.course_id, data.score, data.completed_at)
            await tx.progress.save_completion(data.educator_id, completion)
            await self._issue_earned(tx, educator, {**completions, data.course_id: completion})

    async def _reject_pending(self, tx: Repositories, pending: PendingCompletion, educator: Educator) -> None:
        detail = (
            f"educator {educator.educator_id!r} registered at {educator.institution!r}, but the completion"
            f" (held until registration) names {pending.institution!r}"
        )
        await tx.outbox.add_dead_letter(pending, Reason.INSTITUTION_MISMATCH, detail, datetime.now(UTC))
        log.info(
            "pending completion rejected",
            decision="rejected",
            reason=str(Reason.INSTITUTION_MISMATCH),
            educator_id=educator.educator_id,
            completion_id=pending.event_id,
        )

    async def expire_pending(self, ttl: timedelta, *, limit: int = 500) -> int:
        """Completions parked longer than `ttl` for an educator never registered go to the DLQ
        (`educator_unknown`, the original bytes, re-drivable once the registration exists); how many."""
        now = self._clock()
        async with self._uow.transaction() as tx:
            expired = await tx.progress.take_expired_pending(now - ttl, limit)
            for pending in expired:
                detail = (
                    f"no registration of educator {pending.educator_id!r} arrived within {ttl}; the completion was"
                    " held until then"
                )
                await tx.outbox.add_dead_letter(pending, Reason.EDUCATOR_UNKNOWN, detail, datetime.now(UTC))
                await tx.inbox.release(pending.event_id, source=_source_of(pending.raw))  # re-drivable later
        for pending in expired:
            log.info(
                "parked completion expired",
                decision="dead_lettered",
                reason=str(Reason.EDUCATOR_UNKNOWN),
                educator_id=pending.educator_id,
                completion_id=pending.event_id,
            )
        return len(expired)

    # --- issuing -------------------------------------------------------------------------------------

    async def _issue_earned(self, tx: Repositories, educator: Educator, completions: Mapping[str, Completion]) -> None:
        certificates = await tx.certificates.of_educator(educator.educator_id)
        earned = programmes_to_issue(self.catalogue, completions, certificates)
        if not earned:
            log.debug("progress recorded", educator_id=educator.educator_id)
            return
        keyring = await keys.ensure_keyring(tx.keys)
        for programme in earned:
            await self._issue(tx, educator, programme, keyring)

    async def _issue(self, tx: Repositories, educator: Educator, programme: Programme, keyring: KeyRing) -> None:
        """Store the certificate; only if (educator, programme) was free, emit CertificateIssued."""
        issued_at = self._clock()
        certificate_id = certificate_id_for(educator.educator_id, programme.id)
        if await tx.certificates.get(certificate_id) is not None:
            log.info("certificate already held", educator_id=educator.educator_id, programme_id=programme.id)
            return
        entries = [await self._allocate_status(tx, certificate_id, purpose, issued_at) for purpose in STATUS_PURPOSES]
        try:
            claims = build_credential_claims(
                certificate_id=certificate_id,
                educator_id=educator.educator_id,
                programme=programme,
                issued_at=issued_at,
                issuer=self.issuer,
                language=cast(Language, educator.language),
                credit_system=self.catalogue.credit_system,
                credential_status=[status_entry(self.status_list_url(e.list_id), e.purpose, e.index) for e in entries],
                criteria_url=self.criteria_url(programme.id),
            )
        except ValueError as exc:  # e.g. an e-mail address used as educator id: never put it in a credential
            raise CertificationError(Reason.INVALID_DATA, f"cannot issue a credential: {exc}") from None
        certificate = certificate_for(
            educator,
            programme,
            issued_at=issued_at,
            kid=keyring.active_kid,
            credential=sign_credential(claims, keyring),
        )
        if not await tx.certificates.add(certificate):  # cannot happen under the educator's lock: roll back, retry
            raise RuntimeError(f"certificate {certificate_id!r} appeared during issuance")
        await tx.outbox.add_event(
            CertificateIssued(
                certificate_id=certificate.certificate_id,
                educator_id=educator.educator_id,
                institution=educator.institution,
                programme_id=programme.id,
                course_ids=list(certificate.course_ids),
                credits=certificate.credits,
                issued_at=issued_at,
                credential=certificate.credential,
            ),
            subject=educator.educator_id,
            event_id=f"certificate-issued:{certificate.certificate_id}",
            time=issued_at,
        )
        log.info(
            "certificate issued",
            decision="issued",
            certificate_id=certificate.certificate_id,
            educator_id=educator.educator_id,
            programme_id=programme.id,
            kid=keyring.active_kid,
        )
        if self._on_issued is not None:
            self._on_issued(programme.id)

    async def _allocate_status(
        self, tx: Repositories, certificate_id: str, purpose: StatusPurpose, at: datetime
    ) -> StatusEntry:
        """A random unused index in the newest list of `purpose` (a new list once it is half full)."""
        status_list = await tx.status_lists.newest(purpose)
        if status_list is None or status_list_is_full(
            await tx.status_lists.allocated(status_list.list_id), status_list.size
        ):
            seq = status_list.seq + 1 if status_list else 1
            status_list = await tx.status_lists.create(
                StatusList(status_list_id(purpose, seq), purpose, seq, self._status_list_size, at)
            )
        for _ in range(1000):  # at most half full: a draw fails with p <= 1/2, so 1000 failures never happen
            entry = StatusEntry(certificate_id, purpose, status_list.list_id, self._draw_index(status_list.size))
            if await tx.status_lists.allocate(entry):
                return entry
        raise RuntimeError(f"no free index found in status list {status_list.list_id!r}")

    # --- operator actions ----------------------------------------------------------------------------

    async def revoke(self, command: RevokeCertificate) -> tuple[Revocation, bool]:
        """Revoke once (active or suspended) and emit CertificateRevoked; a repeat returns the first revocation."""
        async with self._uow.transaction() as tx:
            certificate = await _certificate(tx, command.certificate_id, for_update=True)
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
            certificate = await _certificate(tx, certificate_id, for_update=True)
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
            certificate = await _certificate(tx, command.certificate_id, for_update=True)
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
            await tx.certificates.add_recognition(recognition)
            await tx.outbox.add_event(
                CreditRecognized(
                    recognition_id=recognition.recognition_id,
                    certificate_id=certificate.certificate_id,
                    educator_id=certificate.educator_id,
                    institution=certificate.institution,
                    receiving_institution=recognition.receiving_institution,
                    receiving_programme=recognition.receiving_programme,
                    credits=recognition.credits,
                    recognized_at=recognition.recognized_at,
                ),
                subject=certificate.educator_id,
                event_id=f"credit-recognized:{recognition.recognition_id}",
                time=recognition.recognized_at,
            )
        log.info("credits recognised", recognition_id=recognition.recognition_id, certificate_id=command.certificate_id)
        return recognition, True

    async def rotate_key(self) -> KeyRing:
        async with self._uow.transaction() as tx:
            return await keys.rotate_key(tx.keys)

    # --- signing keys at rest (key_vault.py, keys.py) ----------------------------------------------------

    async def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The published JWKS, from the stored public halves; creates the first key if there is none."""
        async with self._uow.transaction() as tx:
            if not any(r.active for r in await tx.keys.public_keys()):
                await keys.ensure_keyring(tx.keys)
            return await keys.public_jwks(tx.keys)

    async def seal_plaintext_keys(self) -> int:
        async with self._uow.transaction() as tx:
            await tx.keys.lock()
            sealed = await tx.keys.seal_plaintext()
        if sealed:
            log.info("signing keys sealed at rest", count=sealed)
        return sealed

    async def retire_compromised_key(self, kid: str, since: datetime | None = None) -> KeyRing:
        async with self._uow.transaction() as tx:
            try:
                return await keys.retire_compromised(tx.keys, kid, since or datetime.now(UTC))
            except KeyError:
                raise CertificationError("key_not_found", f"no signing key {kid!r}") from None

    # --- reads ---------------------------------------------------------------------------------------

    async def keyring(self) -> KeyRing:
        """The signing keys; the very first call creates the first key."""
        async with self._uow.transaction() as tx:
            return await keys.ensure_keyring(tx.keys)

    async def verify(self, token: str) -> Verification:
        """Signature and claims against our JWKS, then the certificate's status on record."""
        jwks = await self.jwks()
        try:
            verified = verify_credential(token, jwks, issuer=self.issuer.id)
        except CredentialError as exc:
            return Verification("invalid", reason=str(exc.reason), detail=exc.detail)
        async with self._uow.transaction() as tx:
            certificate = await tx.certificates.get(verified.certificate_id)
        if (
            certificate is None
            or certificate.educator_id != verified.educator_id
            or certificate.programme_id != verified.programme_id
        ):
            return Verification(
                "invalid", reason="unknown_certificate", detail="signed by us, but no such certificate is on record"
            )
        compromised = key_compromised(jwks, verified.kid, certificate, token)
        if compromised is not None:
            return Verification("invalid", reason="key_compromised", detail=compromised, kid=verified.kid)
        status: Literal["valid", "suspended", "revoked"] = (
            "valid" if certificate.status == "active" else certificate.status
        )
        reason = certificate.revocation.reason if certificate.revocation else None
        if certificate.suspension is not None:
            reason = certificate.suspension.reason
        return Verification(
            status,
            reason=reason,
            certificate=certificate,
            issuer_id=verified.issuer_id,
            kid=verified.kid,
        )

    async def certificate(self, certificate_id: str) -> tuple[Certificate, list[Recognition]]:
        async with self._uow.transaction() as tx:
            certificate = await _certificate(tx, certificate_id)
            return certificate, await tx.certificates.recognitions_of(certificate_id)

    async def status_entries(self, certificate_id: str) -> list[StatusEntry]:
        async with self._uow.transaction() as tx:
            return await tx.status_lists.entries_of(certificate_id)

    async def signed_status_list(self, list_id: str) -> SignedStatusList:
        """The list's BitstringStatusListCredential, signed now with the active key. Same bits, same time of the
        last flip and same key give the same bytes (Ed25519 is deterministic), hence a stable ETag."""
        async with self._uow.transaction() as tx:
            status_list = await tx.status_lists.get(list_id)
            if status_list is None:
                raise CertificationError("status_list_not_found", f"no status list {list_id!r}")
            set_indexes = await tx.status_lists.set_indexes(list_id)
            keyring = await keys.ensure_keyring(tx.keys)
        claims = build_status_list_claims(
            list_url=self.status_list_url(list_id),
            purpose=status_list.purpose,
            size=status_list.size,
            set_indexes=set_indexes,
            issuer_id=self.issuer.id,
            valid_from=status_list.updated_at,
        )
        token = sign_credential(claims, keyring)
        etag = '"' + hashlib.sha256(token.encode("ascii")).hexdigest()[:32] + '"'
        return SignedStatusList(status_list, token, etag)

    async def certificates_of(self, educator_id: str) -> tuple[Educator, list[Certificate]]:
        """The educator (whose institution decides who may see this) and every certificate issued to them."""
        async with self._uow.transaction() as tx:
            educator = await tx.progress.get_educator(educator_id)
            if educator is None:
                raise CertificationError("educator_not_found", f"no registered educator {educator_id!r}")
            return educator, await tx.certificates.of_educator(educator_id)

    async def progress(self, educator_id: str) -> EducatorProgress:
        async with self._uow.transaction() as tx:
            educator = await tx.progress.get_educator(educator_id)
            if educator is None:
                raise CertificationError("educator_not_found", f"no registered educator {educator_id!r}")
            completions = await tx.progress.completions(educator_id)
            certificates = await tx.certificates.of_educator(educator_id)
            pending = await tx.progress.count_pending(educator_id)
        programmes = progress_of(self.catalogue, completions, certificates)
        return EducatorProgress(educator, completions, certificates, programmes, pending)


def key_compromised(jwks: Mapping[str, Any], kid: str, certificate: Certificate, token: str) -> str | None:
    """Why a credential signed by a compromised key is not trusted, or None: only the very credential on record,
    issued before the compromise time by that key, still verifies (a signature alone proves nothing any more)."""
    since = compromised_since(jwks, kid)
    if since is None:
        return None
    if certificate.kid == kid and certificate.credential == token and certificate.issued_at < since:
        return None
    return f"key {kid!r} was retired as compromised from {since.isoformat()}"


async def _certificate(tx: Repositories, certificate_id: str, *, for_update: bool = False) -> Certificate:
    certificate = await tx.certificates.get(certificate_id, for_update=for_update)
    if certificate is None:
        raise CertificationError("certificate_not_found", f"no certificate {certificate_id!r}")
    return certificate


def _source_of(raw: bytes) -> str:
    """The CloudEvents `source` of a parked completion's original bytes ('' if unreadable: the id-only key)."""
    try:
        source = json.loads(raw).get("source")
    except (ValueError, AttributeError):
        return ""
    return source if isinstance(source, str) else ""


def _pending(event_id: str, data: CourseCompleted, origin: MessageOrigin) -> PendingCompletion:
    return PendingCompletion(
        event_id=event_id,
        educator_id=data.educator_id,
        institution=data.institution,
        course_id=data.course_id,
        score=data.score,
        completed_at=data.completed_at,
        subject=origin.subject,
        raw=origin.raw,
        durable=origin.durable,
        stream=origin.stream,
        stream_seq=origin.stream_seq,
    )
