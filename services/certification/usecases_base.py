"""What every certification use case shares: the clock, the service's settings and public URLs, and the
steps more than one use case takes (a certificate on record, a recorded recognition and its event).

The use cases themselves: `usecases_events.py` (events in, issuing), `usecases_operator.py` (revoke, suspend,
reinstate, recognise), `usecases_reads.py` (reads, verification, signing keys); `usecases.Certification`
puts them together.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from iioe.events import CreditRecognized
from services.certification.catalogue import ProgrammeCatalogue
from services.certification.credentials import DEFAULT_ISSUER, IssuerProfile
from services.certification.domain import STATUS_LIST_MIN_SIZE, Certificate, CertificationError, Recognition
from services.certification.ports import Repositories, UnitOfWork


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class CertificationBase:
    """The state every part of `usecases.Certification` works with."""

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


async def load_certificate(tx: Repositories, certificate_id: str, *, for_update: bool = False) -> Certificate:
    certificate = await tx.certificates.get(certificate_id, for_update=for_update)
    if certificate is None:
        raise CertificationError("certificate_not_found", f"no certificate {certificate_id!r}")
    return certificate


async def record_recognition(
    tx: Repositories, certificate: Certificate, recognition: Recognition, *, actor: str | None = None
) -> None:
    """Store a recognition of (some of) the certificate's credits and enqueue its CreditRecognized."""
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
        actor=actor,
    )
