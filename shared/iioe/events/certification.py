"""Events of the certification context."""

from __future__ import annotations

from pydantic import Field

from iioe.events.common import Credits, EventData, Identifier, InstitutionCode, ReasonText, Timestamp


# .. event_type: org.iioe.certification.certificate_issued.v1
# .. subject: iioe.events.<institution>.certificate_issued.v1 (stream IIOE_EVENTS)
# .. producer: certification service
# .. consumers: analytics, notifications, partner registries
# .. personal_data: none (the credential names the educator by id only)
class CertificateIssued(EventData):
    """A programme was earned; `credential` is an Open Badges 3.0 VC-JWT (compact JWS, EdDSA)."""

    certificate_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    programme_id: Identifier
    course_ids: list[Identifier] = Field(min_length=1)
    credits: Credits
    issued_at: Timestamp
    credential: str = Field(min_length=1)


# .. event_type: org.iioe.certification.certificate_revoked.v1
# .. subject: iioe.events.<institution>.certificate_revoked.v1 (stream IIOE_EVENTS)
# .. producer: certification service
# .. consumers: analytics, notifications, partner registries
# .. personal_data: none
class CertificateRevoked(EventData):
    """An operator revoked a certificate; verification now answers `revoked`."""

    certificate_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    reason: str = Field(min_length=1, max_length=500)
    revoked_at: Timestamp


# .. event_type: org.iioe.certification.credit_recognized.v1   (additive to contract v1)
# .. subject: iioe.events.<institution>.credit_recognized.v1 (stream IIOE_EVENTS; institution = the educator's)
# .. producer: certification service (operator action of a receiving institution)
# .. consumers: analytics, partner registries
# .. personal_data: none
class CreditRecognized(EventData):
    """A receiving institution accepted a certificate's credits into one of its programmes."""

    recognition_id: Identifier
    certificate_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    receiving_institution: InstitutionCode
    receiving_programme: str = Field(min_length=1, max_length=200)
    credits: Credits
    recognized_at: Timestamp


# .. event_type: org.iioe.certification.certificate_suspended.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.certificate_suspended.v1 (stream IIOE_EVENTS)
# .. producer: certification service (POST /v1/certificates/<id>/suspend)
# .. consumers: analytics, notifications, partner registries
# .. personal_data: none
class CertificateSuspended(EventData):
    """An operator suspended a certificate; verification answers `suspended` until it is reinstated."""

    certificate_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    reason: ReasonText | None = None
    at: Timestamp


# .. event_type: org.iioe.certification.certificate_reinstated.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.certificate_reinstated.v1 (stream IIOE_EVENTS)
# .. producer: certification service (POST /v1/certificates/<id>/reinstate)
# .. consumers: analytics, notifications, partner registries
# .. personal_data: none
class CertificateReinstated(EventData):
    """An operator lifted a certificate's suspension; verification answers `active` again."""

    certificate_id: Identifier
    educator_id: Identifier
    institution: InstitutionCode
    reason: ReasonText | None = None
    at: Timestamp
