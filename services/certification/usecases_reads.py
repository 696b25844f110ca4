"""Certification use cases that read: certificates, progress, status lists, verification, signing keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from iioe.runtime.logging import get_logger
from services.certification import keys
from services.certification.credentials import (
    CredentialError,
    KeyRing,
    build_status_list_claims,
    sign_credential,
    verify_credential,
)
from services.certification.credentials.verification import compromised_since
from services.certification.domain import (
    Certificate,
    CertificationError,
    Completion,
    Educator,
    ProgrammeProgress,
    Recognition,
    StatusEntry,
    StatusList,
    progress_of,
)
from services.certification.usecases_base import CertificationBase, load_certificate

log = get_logger(__name__)


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


class ReadsAndKeys(CertificationBase):
    """What the routes and pages read, verification of presented credentials, and the signing keys at rest."""

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
            certificate = await load_certificate(tx, certificate_id)
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
