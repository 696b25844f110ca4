"""The rules of the notifications service, pure (no I/O): ids, the status machine, retries, languages.

Everything here is decided without a database, a broker or a clock of its own, so the use cases can
be tested on an in-memory unit of work and the PostgreSQL adapter only has to store the outcome.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal, get_args

from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REINSTATED,
    CERTIFICATE_REVOKED,
    CERTIFICATE_SUSPENDED,
    CREDIT_TRANSFER_DECIDED,
    EDUCATOR_REGISTERED,
    TRAINEE_ATTENDED,
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CreditTransferDecided,
    EducatorRegistered,
)

EMAIL: Final = "email"
ALL_INSTITUTIONS: Final = "*"
NotifyingEvent = (
    EducatorRegistered
    | CertificateIssued
    | CertificateRevoked
    | CertificateSuspended
    | CertificateReinstated
    | CreditTransferDecided
)
"""The event data that trigger an e-mail of their own (and may be forwarded to partner webhooks)."""

MessageName = Literal[
    "welcome",
    "certificate_issued",
    "certificate_revoked",
    "certificate_suspended",
    "certificate_reinstated",
    "credit_transfer_decided",
    "session_attended",
    "monthly_digest",
]
MESSAGES: Final[tuple[MessageName, ...]] = get_args(MessageName)

MESSAGE_FOR_TYPE: Final[dict[str, MessageName]] = {
    EDUCATOR_REGISTERED.type: "welcome",
    CERTIFICATE_ISSUED.type: "certificate_issued",
    CERTIFICATE_REVOKED.type: "certificate_revoked",
    CERTIFICATE_SUSPENDED.type: "certificate_suspended",
    CERTIFICATE_REINSTATED.type: "certificate_reinstated",
    CREDIT_TRANSFER_DECIDED.type: "credit_transfer_decided",
    TRAINEE_ATTENDED.type: "session_attended",
}
"""Which e-mail each event triggers (a trainee's attendance once the session's details are known)."""

DIGEST_TYPE: Final = "org.iioe.notifications.monthly_digest"
"""`event_type` of the monthly digest rows: not an event, the digest task's own record."""

CERTIFICATE_MAILS: Final = frozenset(
    {"certificate_issued", "certificate_revoked", "certificate_suspended", "certificate_reinstated"}
)
WAITS_FOR_ISSUED: Final = frozenset({"certificate_revoked", "certificate_suspended", "certificate_reinstated"})
"""Mails about a certificate that must never reach the educator before the mail saying it was issued."""

WEBHOOK_EVENT_TYPES: Final[dict[str, str]] = {
    spec.name: spec.type
    for spec in (
        EDUCATOR_REGISTERED,
        CERTIFICATE_ISSUED,
        CERTIFICATE_REVOKED,
        CERTIFICATE_SUSPENDED,
        CERTIFICATE_REINSTATED,
        CREDIT_TRANSFER_DECIDED,
    )
}
"""Event types a partner may subscribe to, by short name (`certificate_issued`) → CloudEvent type."""

# -- languages --------------------------------------------------------------------------------

SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = ("mn", "en", "ru")
FALLBACK_LANGUAGE: Final = "en"


def resolve_language(language: str | None) -> str:
    """Pick the template language: `mn-MN`/`RU` normalise to `mn`/`ru`; anything unknown reads English."""
    if not language:
        return FALLBACK_LANGUAGE
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else FALLBACK_LANGUAGE


# -- ids --------------------------------------------------------------------------------------

# Notification ids become Message-ID local parts and mailbox file names, so only a safe subset is allowed.
_NOTIFICATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def validate_notification_id(notification_id: str) -> str:
    """Reject ids that would corrupt a Message-ID header or escape the mailbox folder as a file name."""
    if not _NOTIFICATION_ID.fullmatch(notification_id):
        raise ValueError(
            f"notification id {notification_id!r} must match {_NOTIFICATION_ID.pattern} "
            "(it becomes a Message-ID and a file name)"
        )
    return notification_id


def _digest(*parts: str) -> str:
    # a unit separator cannot occur in ids, so ("a|b", "c") and ("a", "b|c") never collide
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def notification_id(source: str, event_id: str, channel: str, recipient: str) -> str:
    """Stable id of one notification: the same event, channel and recipient always give the same id.

    The recipient is the educator id, not the address, because the address may arrive after the
    event (contact and registration travel on different streams) and must not change the id.
    CloudEvent ids are unique per `source`, so the source is part of the key.
    """
    return validate_notification_id(f"ntf-{_digest(source, event_id, channel, recipient)}")


def delivery_id(webhook_id: str, source: str, event_id: str) -> str:
    """Stable id of one webhook delivery, sent as `webhook-id` so partners can deduplicate retries."""
    return f"msg_{_digest(webhook_id, source, event_id)[:40]}"


def normalise_event_type(value: str) -> str | None:
    """Accept `certificate_issued` or the full CloudEvent type; None when partners cannot subscribe to it."""
    if value in WEBHOOK_EVENT_TYPES.values():
        return value
    return WEBHOOK_EVENT_TYPES.get(value)


def month_of(day: date) -> str:
    """`2026-03-14` → `2026-03`: the key of a monthly digest."""
    return f"{day.year:04d}-{day.month:02d}"


def previous_month(now: datetime) -> tuple[str, date, date]:
    """The month before `now` (UTC): its key, first day and last day — what a digest sent now reports."""
    first_this = now.astimezone(UTC).date().replace(day=1)
    last = first_this - timedelta(days=1)
    return month_of(last), last.replace(day=1), last


_ADDRESS = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


def scrub_addresses(text: str) -> str:
    """Replace e-mail addresses (an SMTP server's reply may echo one) so errors can be stored and logged."""
    return _ADDRESS.sub("<address>", text)


def mask_email(address: str | None) -> str | None:
    """`sarnai.b@must.edu.mn` → `s***@must.edu.mn`: enough to recognise, not enough to harvest."""
    if not address:
        return address
    local, at, domain = address.partition("@")
    return f"{local[:1]}***{at}{domain}"


def verify_url(certification_url: str, certificate_id: str) -> str:
    return f"{certification_url.rstrip('/')}/verify/{certificate_id}"


def event_facts(kind: MessageName, data: NotifyingEvent, certification_url: str) -> dict[str, Any]:
    """What the template needs from the event; names and addresses are added at send time (never stored
    with the event facts, so the contact may arrive later and is read fresh when sending)."""
    if isinstance(data, CertificateIssued):
        return {
            "institution": data.institution,
            "certificate_id": data.certificate_id,
            "programme_id": data.programme_id,
            "credits": data.credits,
            "issued_at": data.issued_at.isoformat(),
            "verify_url": verify_url(certification_url, data.certificate_id),
        }
    if isinstance(data, CertificateRevoked):
        return {
            "institution": data.institution,
            "certificate_id": data.certificate_id,
            "reason": data.reason,
            "revoked_at": data.revoked_at.isoformat(),
            "verify_url": verify_url(certification_url, data.certificate_id),
        }
    if isinstance(data, CertificateSuspended | CertificateReinstated):
        return {
            "institution": data.institution,
            "certificate_id": data.certificate_id,
            "reason": data.reason,
            "at": data.at.isoformat(),
            "verify_url": verify_url(certification_url, data.certificate_id),
        }
    if isinstance(data, CreditTransferDecided):
        return {
            "institution": data.institution,
            "request_id": data.request_id,
            "receiving_institution": data.receiving_institution,
            "decision": data.decision,
            "credits": data.granted_credits,
            "reason": data.reason,
            "decided_at": data.decided_at.isoformat(),
        }
    return {"institution": data.institution}


@dataclass(frozen=True)
class Session:
    """A master teacher's training session (from TrainingSessionHeld), kept to tell its trainees."""

    session_id: str
    institution: str
    master_teacher_id: str
    region: str
    mode: str
    held_on: date
    language: str

    def facts(self, trainee_institution: str) -> dict[str, Any]:
        return {
            "institution": trainee_institution,
            "session_id": self.session_id,
            "session_institution": self.institution,
            "region": self.region,
            "mode": self.mode,
            "held_on": self.held_on.isoformat(),
            "session_language": self.language,
        }


def attendance_notification_id(session_id: str, educator_id: str) -> str:
    """One mail per (session, trainee), however often the attendance is reported."""
    return notification_id("urn:iioe:attendance", session_id, EMAIL, educator_id)


def digest_notification_id(educator_id: str, month: str) -> str:
    """One digest per (master teacher, month): the idempotency key of the monthly digest."""
    return notification_id("urn:iioe:digest", month, EMAIL, educator_id)


# -- the notification and its status machine --------------------------------------------------

ERASED: Final = "educator erased"


class NotificationStatus(StrEnum):
    HELD = "held"
    AWAITING_CONTACT = "awaiting_contact"
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"


S = NotificationStatus
TRANSITIONS: Final[Mapping[NotificationStatus, frozenset[NotificationStatus]]] = {
    # waits for an earlier mail (the certificate's issued mail): released, or erased / never released
    S.HELD: frozenset({S.PENDING, S.AWAITING_CONTACT, S.EXPIRED}),
    S.AWAITING_CONTACT: frozenset({S.PENDING, S.EXPIRED}),  # the contact came / never came (or erased)
    S.PENDING: frozenset({S.SENDING, S.EXPIRED}),  # a worker claimed it / the educator was erased
    # sent; a transient error (back to pending with a delay); given up; reclaimed after a lost lease;
    # or the educator was erased meanwhile
    S.SENDING: frozenset({S.SENT, S.PENDING, S.FAILED, S.SENDING, S.EXPIRED}),
    S.SENT: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
}
"""Every allowed move; anything else is a bug and raises `IllegalTransition`."""


class IllegalTransition(Exception):
    """A notification was asked to move where its status machine does not allow."""

    def __init__(self, notification_id: str, current: NotificationStatus, target: NotificationStatus) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        super().__init__(
            f"notification {notification_id}: {current} → {target} is not allowed (from {current}: {allowed})"
        )
        self.current = current
        self.target = target


def check_transition(notification_id: str, current: NotificationStatus, target: NotificationStatus) -> None:
    """Raise `IllegalTransition` unless `TRANSITIONS` allows `current → target`."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(notification_id, current, target)


@dataclass(frozen=True)
class Contact:
    """How to reach an educator (personal data: kept only by this service, never on IIOE_EVENTS)."""

    educator_id: str
    institution: str
    full_name: str
    email: str
    language: str


@dataclass(frozen=True)
class Notification:
    """One e-mail to one educator about one event; immutable, each transition returns the next state."""

    notification_id: str
    event_id: str
    event_type: str
    kind: MessageName
    educator_id: str
    context: Mapping[str, Any]
    status: NotificationStatus = S.AWAITING_CONTACT
    channel: str = EMAIL
    recipient: str | None = None
    language: str | None = None
    attempts: int = 0
    last_error: str | None = None
    retry_after_seconds: float | None = None
    """Set by `retry_later`: how long the queue should wait before the next attempt."""

    @property
    def institution(self) -> str | None:
        value = self.context.get("institution")
        return str(value) if value is not None else None

    @property
    def certificate_id(self) -> str | None:
        value = self.context.get("certificate_id") if self.kind in CERTIFICATE_MAILS else None
        return str(value) if value is not None else None

    @property
    def final(self) -> bool:
        return not TRANSITIONS[self.status]

    @classmethod
    def for_event(
        cls,
        *,
        source: str,
        event_id: str,
        event_type: str,
        educator_id: str,
        context: Mapping[str, Any],
        contact: Contact | None,
        held: bool = False,
    ) -> Notification:
        """The e-mail an event triggers: `pending` when the address is known, else `awaiting_contact`;
        `held` when it must wait for an earlier mail (see `WAITS_FOR_ISSUED`)."""
        return cls.create(
            notification_id=notification_id(source, event_id, EMAIL, educator_id),
            event_id=event_id,
            event_type=event_type,
            kind=MESSAGE_FOR_TYPE[event_type],
            educator_id=educator_id,
            context=context,
            contact=contact,
            held=held,
        )

    @classmethod
    def create(
        cls,
        *,
        notification_id: str,
        event_id: str,
        event_type: str,
        kind: MessageName,
        educator_id: str,
        context: Mapping[str, Any],
        contact: Contact | None,
        held: bool = False,
    ) -> Notification:
        created = cls(
            notification_id=validate_notification_id(notification_id),
            event_id=event_id,
            event_type=event_type,
            kind=kind,
            educator_id=educator_id,
            context=dict(context),
            status=S.HELD if held else S.AWAITING_CONTACT,
        )
        if held or contact is None:
            return created
        return created.contact_arrived(contact)

    def _move(self, target: NotificationStatus, **changes: Any) -> Notification:
        check_transition(self.notification_id, self.status, target)
        return replace(self, status=target, **changes)

    def contact_arrived(self, contact: Contact) -> Notification:
        return self._move(S.PENDING, recipient=contact.email, language=contact.language)

    def release(self, contact: Contact | None) -> Notification:
        """The mail it waited for is done: sendable now, or waiting for the contact like any other."""
        if contact is None:
            return self._move(S.AWAITING_CONTACT)
        return self._move(S.PENDING, recipient=contact.email, language=contact.language)

    def expire(self, reason: str = "no contact details received") -> Notification:
        return self._move(S.EXPIRED, last_error=reason)

    def erase(self) -> Notification:
        """The educator was erased: nothing more is sent, and the address is forgotten."""
        if self.final:
            return replace(self, recipient=None)
        return self._move(S.EXPIRED, recipient=None, last_error=ERASED)

    def start_sending(self) -> Notification:
        return self._move(S.SENDING, attempts=self.attempts + 1, retry_after_seconds=None)

    def sent(self, recipient: str) -> Notification:
        return self._move(S.SENT, recipient=recipient, last_error=None)

    def retry_later(self, error: str, after_seconds: float) -> Notification:
        return self._move(S.PENDING, last_error=error, retry_after_seconds=after_seconds)

    def fail(self, error: str) -> Notification:
        return self._move(S.FAILED, last_error=error)


# -- retries ----------------------------------------------------------------------------------

_system_random = random.SystemRandom()


def retry_delays(attempt: int, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0 = first retry): exponential backoff, full jitter.

    The ceiling doubles per attempt, `min(cap, base * 2**attempt)`, and the delay is drawn uniformly
    from `[0, ceiling]` ("full jitter", AWS Architecture Blog, 2015). The jitter spreads retries of
    many sends that failed together (a relay or partner outage) so they do not hit the recovering
    endpoint in synchronised waves; the cap keeps a long outage from pushing retries hours apart.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    # 2.0**attempt overflows a float past ~1023; by then the cap has long been reached.
    ceiling = cap if attempt >= 1000 else min(cap, base * 2.0**attempt)
    return (rng or _system_random).uniform(0.0, ceiling)


@dataclass(frozen=True)
class Retry:
    after_seconds: float


@dataclass(frozen=True)
class GiveUp:
    reason: Literal["permanent", "max_attempts"]


@dataclass(frozen=True)
class RetrySchedule:
    """When to try a failed send again, and when to stop: capped, jittered backoff, `max_attempts` in all."""

    base_seconds: float
    cap_seconds: float
    max_attempts: int
    rng: random.Random | None = None

    def after_failure(self, attempts: int, *, permanent: bool = False) -> Retry | GiveUp:
        """`attempts` counts the one that just failed (1 after the first)."""
        if permanent:
            return GiveUp("permanent")
        if attempts >= self.max_attempts:
            return GiveUp("max_attempts")
        return Retry(retry_delays(attempts - 1, self.base_seconds, self.cap_seconds, self.rng))
