"""Events of credit transfer between institutions (contract v1.1)."""

from __future__ import annotations

from typing import Literal

from iioe.events.common import Credits, EventData, Identifier, InstitutionCode, Label, ReasonText, Timestamp

Decision = Literal["accepted", "rejected"]


# .. event_type: org.iioe.recognition.credit_transfer_requested.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.credit_transfer_requested.v1 (stream IIOE_EVENTS; the educator's)
# .. producer: platform
# .. consumers: analytics, partner registries (the receiving institution)
# .. personal_data: none
class CreditTransferRequested(EventData):
    """An educator asked a receiving institution to transfer a certificate's credits into a programme."""

    request_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    certificate_id: Identifier
    receiving_institution: InstitutionCode
    receiving_programme: Label
    requested_at: Timestamp


# .. event_type: org.iioe.recognition.credit_transfer_decided.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.credit_transfer_decided.v1 (stream IIOE_EVENTS; the educator's)
# .. producer: platform
# .. consumers: analytics, notifications, partner registries
# .. personal_data: none (`reason` is an operator's short reason, never about the person)
class CreditTransferDecided(EventData):
    """The receiving institution accepted or rejected a credit transfer request.

    `credits` is optional as in the contract and is only meaningful when the decision is
    `accepted` (read it through `granted_credits`, which is None for a rejection). The
    schema does not require credits on acceptance nor forbid them on rejection: that would
    narrow what contract v1.1 accepts.
    """

    request_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    receiving_institution: InstitutionCode
    decision: Decision
    credits: Credits | None = None
    reason: ReasonText | None = None
    decided_at: Timestamp

    @property
    def granted_credits(self) -> float | None:
        """The credits granted: `credits` when accepted, None when rejected (credits sent with one are ignored)."""
        return self.credits if self.decision == "accepted" else None
