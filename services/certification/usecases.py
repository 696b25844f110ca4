"""Certification use cases: apply registrations and completions, issue, revoke, recognise, verify.

They take plain commands and event data (never a NATS message or the runtime) and one unit-of-work
port (`ports.UnitOfWork`); the rules they apply live in `domain.py`. Every change to one educator runs in
one transaction under that educator's lock, with the inbox claim and the outgoing events in the same
transaction: replicas, redeliveries and replays then all reach the same single certificate per
(educator, programme).

`Certification` is put together from `usecases_events.py` (events in, issuing), `usecases_operator.py`
(operator actions) and `usecases_reads.py` (reads, verification, signing keys) over `usecases_base.py`;
every public name stays importable from here.
"""

from __future__ import annotations

from services.certification.usecases_base import utc_now
from services.certification.usecases_events import EventsIn, MessageOrigin
from services.certification.usecases_operator import (
    OperatorActions,
    RecognizeCredits,
    ReinstateCertificate,
    RevokeCertificate,
    SuspendCertificate,
)
from services.certification.usecases_reads import (
    EducatorProgress,
    ReadsAndKeys,
    SignedStatusList,
    Verification,
    key_compromised,
)

__all__ = [
    "Certification",
    "EducatorProgress",
    "MessageOrigin",
    "RecognizeCredits",
    "ReinstateCertificate",
    "RevokeCertificate",
    "SignedStatusList",
    "SuspendCertificate",
    "Verification",
    "key_compromised",
    "utc_now",
]


class Certification(EventsIn, OperatorActions, ReadsAndKeys):
    """The service's behaviour; the consumer handlers and HTTP routes only translate to and from it."""
