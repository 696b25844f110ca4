"""What the use cases need from the outside world, as narrow protocols.

The unit of work yields the repositories inside one transaction; the PostgreSQL adapter
(`store.py`) and the in-memory fake (`tests/fakes.py`) both implement it, so the rules are tested
without servers and run unchanged in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable

from services.notifications.domain import Contact, Notification, NotificationStatus, Session
from services.notifications.mime import OutgoingMail
from services.notifications.targets import Target


class DeliveryError(Exception):
    """A message could not be handed over.

    `permanent=True` means retrying this message cannot help (the server rejected the sender, the
    recipient or the content); `False` means try again later (network, timeouts, 4xx, configuration).
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent

    def __repr__(self) -> str:
        return f"DeliveryError({self.message!r}, permanent={self.permanent})"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Outcome of one webhook attempt; never raised, so callers can record and schedule a retry."""

    status_code: int | None
    error: str | None
    ok: bool
    duration_ms: float


@dataclass(frozen=True)
class ClaimedNotification:
    """A notification taken by a worker (`sending`); only the holder of `token` can finish it."""

    notification: Notification
    token: uuid.UUID


@dataclass(frozen=True)
class NewDelivery:
    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    event_subject: str
    body: bytes


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: str
    webhook_id: str
    url: str
    secret: str
    event_id: str
    event_subject: str
    body: bytes
    attempts: int
    token: uuid.UUID


@dataclass(frozen=True)
class NewWebhook:
    webhook_id: str
    url: str
    institution: str
    event_types: list[str]
    secret: str


# -- repositories (inside one transaction) ----------------------------------------------------


class Inbox(Protocol):
    async def claim(self, consumer: str, event_id: str) -> bool:
        """True the first time; rolled back with the transaction."""
        ...

    async def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        """`claim` for a batch: the ids seen for the first time."""
        ...


class Contacts(Protocol):
    async def lock(self, educator_id: str) -> None:
        """Serialise the contact and event handlers of one educator (no lost hand-over)."""
        ...

    async def upsert(self, contact: Contact, event_time: datetime) -> bool:
        """Store the newest contact; an older one arriving late does not overwrite it."""
        ...

    async def upsert_many(self, contacts: Sequence[tuple[Contact, datetime]]) -> None:
        """`upsert` of each, in order."""
        ...

    async def lock_many(self, educator_ids: Sequence[str]) -> None:
        """`lock` for several educators, in sorted order (two batches never wait on each other)."""
        ...

    async def get(self, educator_id: str) -> Contact | None: ...

    async def get_many(self, educator_ids: Sequence[str]) -> dict[str, Contact]:
        """The known contacts among these educators, by educator id (one query for a batch of mail)."""
        ...

    async def delete(self, educator_id: str) -> bool: ...


class Erasures(Protocol):
    async def add(self, educator_id: str, erased_at: datetime) -> bool:
        """Remember that this educator was erased; False when already known."""
        ...

    async def erased(self, educator_id: str) -> bool: ...

    async def erased_many(self, educator_ids: Sequence[str]) -> set[str]: ...


class Notifications(Protocol):
    async def add(self, notification: Notification) -> bool:
        """Insert once per notification id; False when it already exists."""
        ...

    async def add_many(self, notifications: Sequence[Notification]) -> set[str]:
        """`add` for a batch in one statement; returns the ids inserted."""
        ...

    async def awaiting_contact(self, educator_id: str) -> list[Notification]: ...

    async def awaiting_contact_many(self, educator_ids: Sequence[str]) -> list[Notification]: ...

    async def overdue(self, created_before: datetime, limit: int) -> list[Notification]:
        """`awaiting_contact` and `held` notifications created before the cutoff."""
        ...

    async def of_certificate(self, certificate_id: str, kind: str) -> list[Notification]: ...

    async def held(self, certificate_id: str) -> list[Notification]:
        """`held` notifications about this certificate, oldest first."""
        ...

    async def with_held(self, certificate_ids: Sequence[str]) -> set[str]:
        """Those of the certificates that have `held` notifications (most have none)."""
        ...

    async def erase(self, educator_id: str) -> int:
        """`Notification.erase` on every row of the educator (unsent ones expire, addresses are
        forgotten, claims are dropped); returns how many were stopped before sending."""
        ...

    async def save(self, notification: Notification, expected: NotificationStatus) -> bool:
        """Store a transition; False when the row was no longer in `expected` (someone else moved it)."""
        ...

    async def find(
        self, educator_id: str | None, status: str | None, institution: str | None, limit: int
    ) -> list[dict[str, Any]]: ...


class Cascade(Protocol):
    """Training sessions, attendance and trainees' progress (ids only), for attendance mails and digests."""

    async def add_session(self, session: Session) -> bool: ...

    async def session(self, session_id: str) -> Session | None: ...

    async def add_attendance(self, session_id: str, educator_id: str, institution: str, event_id: str) -> bool: ...

    async def attendances(self, session_id: str) -> list[tuple[str, str, str]]:
        """(educator_id, institution, event_id) of everyone who attended."""
        ...

    async def add_completion(self, educator_id: str, course_id: str) -> bool: ...

    async def add_certified(self, educator_id: str, certificate_id: str) -> bool: ...

    async def master_teachers(self, held_until: date) -> list[str]:
        """Master teachers with at least one trainee in a session held on or before the day."""
        ...

    async def digest_facts(self, master_teacher_id: str, first: date, last: date) -> dict[str, int]:
        """`trainees` (sessions held until `last`), `new_trainees` and `sessions` (held within the
        month), `trainees_completing` (≥ 1 course completed), `trainees_certified`."""
        ...

    async def claim_digest(self, master_teacher_id: str, month: str) -> bool:
        """True once per (master teacher, month)."""
        ...

    async def forget(self, educator_id: str) -> None:
        """Erasure: the educator's attendance and progress."""
        ...


class MailQueue(Protocol):
    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedNotification]:
        """Due `pending` rows and `sending` rows whose lease ran out, now `sending` with a fresh token."""
        ...

    async def finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        """Store `outcome` (sent, pending again after `retry_after_seconds`, failed) if the token still holds."""
        ...

    async def finish_many(self, outcomes: Sequence[tuple[ClaimedNotification, Notification]]) -> list[bool]:
        """`finish` for each (claim, outcome), in order; the sent ones in one statement."""
        ...

    async def extend(self, claimed: Sequence[ClaimedNotification], lease_seconds: float) -> int:
        """Renew the lease of the claims still held (`sending`, same token); returns how many."""
        ...


class Webhooks(Protocol):
    async def create(self, webhook: NewWebhook) -> dict[str, Any]: ...

    async def live(self) -> list[dict[str, Any]]: ...

    async def delete(self, webhook_id: str) -> bool:
        """Soft delete; False when there is no such live webhook."""
        ...

    async def matching(self, institution: str, event_type: str) -> list[str]: ...


class Deliveries(Protocol):
    async def add(self, delivery: NewDelivery) -> bool: ...

    async def claim(self, lease_seconds: float) -> ClaimedDelivery | None: ...

    async def delivered(self, d: ClaimedDelivery, status_code: int | None) -> bool: ...

    async def extend(self, d: ClaimedDelivery, lease_seconds: float) -> bool:
        """Renew the lease while the token still holds."""
        ...

    async def retry(self, d: ClaimedDelivery, status_code: int | None, error: str | None, after: float) -> bool: ...

    async def dead(self, d: ClaimedDelivery, status_code: int | None, error: str | None) -> bool: ...

    async def cancel_pending(self, webhook_id: str) -> int: ...

    async def redrive(self, delivery_id: str) -> bool:
        """A dead delivery becomes pending with a fresh retry budget."""
        ...

    async def find(
        self, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
    ) -> list[dict[str, Any]]: ...


class Repositories(Protocol):
    @property
    def inbox(self) -> Inbox: ...
    @property
    def contacts(self) -> Contacts: ...
    @property
    def notifications(self) -> Notifications: ...
    @property
    def mail(self) -> MailQueue: ...
    @property
    def webhooks(self) -> Webhooks: ...
    @property
    def deliveries(self) -> Deliveries: ...
    @property
    def erasures(self) -> Erasures: ...
    @property
    def cascade(self) -> Cascade: ...


class UnitOfWork(Protocol):
    """One transaction: everything done with the yielded repositories commits or rolls back together."""

    def transaction(self) -> AbstractAsyncContextManager[Repositories]: ...


# -- the outside world beyond the database ----------------------------------------------------


@runtime_checkable
class MailSender(Protocol):
    """Anything that can hand one e-mail to its next hop; raises `DeliveryError` on failure."""

    async def send(self, mail: OutgoingMail) -> None: ...


class StoredMail(Protocol):
    """Copies of sent mail kept by the service itself (the `.eml` mailbox), deleted on erasure."""

    async def forget(self, notification_ids: list[str]) -> int: ...


class Composer(Protocol):
    """Renders a notification for one person into an e-mail; raises ValueError when it cannot."""

    def compose(self, notification: Notification, contact: Contact, language: str, sender: str) -> OutgoingMail: ...


class WebhookPoster(Protocol):
    async def post(self, target: Target, secret: str, msg_id: str, body: bytes) -> DeliveryResult:
        """POST to the checked target's address (never resolving the host again)."""
        ...


class TargetGuard(Protocol):
    async def resolve(self, url: str) -> Target:
        """Resolve and check a webhook URL now; raises `TargetRefused`."""
        ...


class DeadLetters(Protocol):
    async def webhook_failed(self, d: ClaimedDelivery, error: str) -> None:
        """Make a give-up visible on IIOE_DLQ; the row's `dead` status stays the source of truth."""
        ...


class SendingObserver(Protocol):
    """Told about every outcome of a send (the service's metrics, `ServiceMetrics`, is one); no personal data."""

    def mail_sent(self) -> None: ...

    def mail_failed(self) -> None: ...

    def webhook_sent(self) -> None: ...

    def webhook_failed(self) -> None: ...
