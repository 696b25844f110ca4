"""Credit transfer (#12 item 3): an educator's institution asks a receiving institution to count a certificate's
credits in one of its programmes; the receiving institution accepts (with credits) or rejects (with a reason).

Pure rules over plain data, like `domain.py`:

* only an active certificate (not revoked, not suspended) can be transferred, or accepted;
* the credits accepted for one certificate never exceed its credits in total, across every receiving
  programme (recognitions recorded directly count too);
* a decision is final: the same decision again is the same decision (idempotent), another one is refused;
* the same request again (certificate, receiving institution, receiving programme) is the same request.

Who may act is a rule as well: the request comes from the educator's institution (or an operator), the
decision only from the receiving institution (or an operator).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from services.certification.domain import CERTIFICATE_NAMESPACE, Certificate, CertificationError, Recognition

Decision = Literal["accepted", "rejected"]

__all__ = [
    "CreditTransfer",
    "Decision",
    "check_actor",
    "decide",
    "request",
    "transfer_id_for",
]


@dataclass(frozen=True)
class CreditTransfer:
    request_id: str
    educator_id: str
    institution: str
    """The educator's (the certificate's) institution."""
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    requested_at: datetime
    decision: Decision | None = None
    credits: float | None = None
    reason: str | None = None
    decided_at: datetime | None = None

    @property
    def status(self) -> Literal["requested", "accepted", "rejected"]:
        return self.decision or "requested"


def transfer_id_for(certificate_id: str, receiving_institution: str, receiving_programme: str) -> str:
    """One request per (certificate, receiving institution, receiving programme): a retry is the same request."""
    name = json.dumps(
        ["credit-transfer", certificate_id, receiving_institution, receiving_programme],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return f"ctr-{uuid.uuid5(CERTIFICATE_NAMESPACE, name)}"


def check_actor(acting_institution: str | None, institution: str, what: str) -> None:
    """`acting_institution` None is an operator; an institution acts only for itself."""
    if acting_institution is not None and acting_institution != institution:
        raise CertificationError("forbidden", f"only {institution!r} (or an operator) may {what}")


def _require_active(certificate: Certificate) -> None:
    if certificate.status != "active":
        raise CertificationError(
            f"certificate_{certificate.status}",
            f"certificate {certificate.certificate_id!r} is {certificate.status}: its credits cannot be transferred",
        )


def request(
    certificate: Certificate,
    educator_id: str,
    receiving_institution: str,
    receiving_programme: str,
    *,
    existing: CreditTransfer | None,
    at: datetime,
) -> tuple[CreditTransfer, bool]:
    """(the request, True) when new; (the first one, False) when repeated — whatever has been decided since."""
    if certificate.educator_id != educator_id:
        raise CertificationError(
            "certificate_not_found", f"educator {educator_id!r} holds no certificate {certificate.certificate_id!r}"
        )
    if existing is not None:
        return existing, False
    _require_active(certificate)
    transfer = CreditTransfer(
        request_id=transfer_id_for(certificate.certificate_id, receiving_institution, receiving_programme),
        educator_id=certificate.educator_id,
        institution=certificate.institution,
        certificate_id=certificate.certificate_id,
        receiving_institution=receiving_institution,
        receiving_programme=receiving_programme,
        requested_at=at,
    )
    return transfer, True


def decide(
    transfer: CreditTransfer,
    certificate: Certificate,
    decision: Decision,
    *,
    credits: float | None,
    reason: str | None,
    recognitions: Iterable[Recognition],
    at: datetime,
) -> tuple[CreditTransfer, bool]:
    """The decision on a request: (decided, True) the first time, (the first decision, False) when repeated.

    Acceptance needs credits > 0, an active certificate, and room: the credits already recognised for this
    certificate (in any receiving programme) plus these never exceed the certificate's credits.
    Rejection needs a reason. Another decision after the first is refused (`decision_final`).
    """
    if transfer.decision is not None:
        same = transfer.decision == decision and (decision == "rejected" or credits in (None, transfer.credits))
        if same:
            return transfer, False
        raise CertificationError(
            "decision_final", f"request {transfer.request_id!r} was already {transfer.decision}: decisions are final"
        )
    if decision == "rejected":
        if not reason or not reason.strip():
            raise CertificationError("reason_required", "a rejection needs a reason")
        return replace(transfer, decision="rejected", reason=reason.strip(), decided_at=at), True
    if credits is None or credits <= 0:
        raise CertificationError("credits_required", "an acceptance needs credits > 0")
    _require_active(certificate)
    already = sum(r.credits for r in recognitions)
    if already + credits > certificate.credits + 1e-9:
        raise CertificationError(
            "credits_exceed_certificate",
            f"{credits:g} credits would bring certificate {certificate.certificate_id!r} to {already + credits:g};"
            f" it carries {certificate.credits:g} in all ({already:g} already recognised)",
        )
    return replace(transfer, decision="accepted", credits=credits, reason=reason, decided_at=at), True
