"""Test doubles for notifications: an in-memory unit of work and fake senders (plus the real servers).

`FakeUnitOfWork` implements the same ports as the PostgreSQL adapter, so the use cases are tested
without any server (cosmicpython's FakeUnitOfWork). Its queues follow the lease-queue rule (due
`pending` rows, or `sending` rows whose lease ran out; only the token's holder may finish) and move
notifications only through the domain's transitions. The real local servers (SMTP relay, HTTP
partner receiver) live in `servers.py` and are re-exported here for the integration tests.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from services.notifications.domain import Contact, Notification, NotificationStatus, Session
from services.notifications.mime import OutgoingMail
from services.notifications.ports import (
    ClaimedDelivery,
    ClaimedNotification,
    DeliveryError,
    DeliveryResult,
    NewDelivery,
    NewWebhook,
)
from services.notifications.targets import Target, TargetPolicy
from services.notifications.tests.servers import Receiver, SmtpCapture, http_receiver, smtp_server

__all__ = ["Receiver", "SmtpCapture", "http_receiver", "smtp_server"]
AWAITING = NotificationStatus.AWAITING_CONTACT


class FakeClock:
    """The fakes' notion of now; tests move it forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Row:
    """A queued notification or delivery with its queue bookkeeping."""

    item: Any
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"
    attempts: int = 0
    token: uuid.UUID | None = None
    lease_until: datetime | None = None
    last_error: str | None = None

    def due(self, now: datetime) -> bool:
        """The lease queue's rule: pending and due, or claimed with an expired lease."""
        if self.status == "pending":
            return self.next_attempt_at <= now
        return self.status == "sending" and self.lease_until is not None and self.lease_until < now


@dataclass
class FakeState:
    inbox: set[tuple[str, str]] = field(default_factory=set)
    contacts: dict[str, tuple[Contact, datetime]] = field(default_factory=dict)
    notifications: dict[str, Row] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: dict[str, Row] = field(default_factory=dict)
    erasures: dict[str, datetime] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    attendances: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    """(session_id, educator_id) → (institution, event_id)"""
    completions: set[tuple[str, str]] = field(default_factory=set)
    certified: set[tuple[str, str]] = field(default_factory=set)
    digests: set[tuple[str, str]] = field(default_factory=set)
    finish_batches: list[int] = field(default_factory=list)
    """How many outcomes each `finish_many` recorded (one transaction each)."""


@dataclass
class _Repo:
    state: FakeState
    clock: FakeClock


class FakeInbox(_Repo):
    async def claim(self, consumer: str, event_id: str) -> bool:
        if (consumer, event_id) in self.state.inbox:
            return False
        self.state.inbox.add((consumer, event_id))
        return True

    async def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        return {event_id for event_id in dict.fromkeys(event_ids) if await self.claim(consumer, event_id)}


class FakeContacts(_Repo):
    async def lock(self, educator_id: str) -> None:
        return None  # one event loop and no await between read and write: nothing to serialise

    async def lock_many(self, educator_ids: Sequence[str]) -> None:
        return None

    async def upsert(self, contact: Contact, event_time: datetime) -> bool:
        current = self.state.contacts.get(contact.educator_id)
        if current is not None and current[1] > event_time:
            return False
        self.state.contacts[contact.educator_id] = (contact, event_time)
        return True

    async def get(self, educator_id: str) -> Contact | None:
        found = self.state.contacts.get(educator_id)
        return found[0] if found else None

    async def upsert_many(self, contacts: Sequence[tuple[Contact, datetime]]) -> None:
        for contact, event_time in contacts:
            await self.upsert(contact, event_time)

    async def get_many(self, educator_ids: Sequence[str]) -> dict[str, Contact]:
        return {e: self.state.contacts[e][0] for e in educator_ids if e in self.state.contacts}

    async def delete(self, educator_id: str) -> bool:
        return self.state.contacts.pop(educator_id, None) is not None


class FakeErasures(_Repo):
    async def add(self, educator_id: str, erased_at: datetime) -> bool:
        if educator_id in self.state.erasures:
            return False
        self.state.erasures[educator_id] = erased_at
        return True

    async def erased(self, educator_id: str) -> bool:
        return educator_id in self.state.erasures

    async def erased_many(self, educator_ids: Sequence[str]) -> set[str]:
        return {e for e in educator_ids if e in self.state.erasures}


class FakeNotifications(_Repo):
    async def add(self, n: Notification) -> bool:
        if n.notification_id in self.state.notifications:
            return False
        now = self.clock.now
        self.state.notifications[n.notification_id] = Row(n, now, now, status=str(n.status))
        return True

    async def add_many(self, notifications: Sequence[Notification]) -> set[str]:
        return {n.notification_id for n in notifications if await self.add(n)}

    async def awaiting_contact_many(self, educator_ids: Sequence[str]) -> list[Notification]:
        return [r.item for r in self._where(AWAITING) if r.item.educator_id in educator_ids]

    def _where(self, status: NotificationStatus) -> list[Row]:
        return [r for r in self.state.notifications.values() if r.item.status is status]

    async def awaiting_contact(self, educator_id: str) -> list[Notification]:
        return [r.item for r in self._where(AWAITING) if r.item.educator_id == educator_id]

    async def overdue(self, created_before: datetime, limit: int) -> list[Notification]:
        rows = self._where(AWAITING) + self._where(NotificationStatus.HELD)
        return [r.item for r in sorted(rows, key=lambda r: r.created_at) if r.created_at < created_before][:limit]

    async def of_certificate(self, certificate_id: str, kind: str) -> list[Notification]:
        rows = self.state.notifications.values()
        return [r.item for r in rows if r.item.certificate_id == certificate_id and r.item.kind == kind]

    async def held(self, certificate_id: str) -> list[Notification]:
        return [r.item for r in self._where(NotificationStatus.HELD) if r.item.certificate_id == certificate_id]

    async def with_held(self, certificate_ids: Sequence[str]) -> set[str]:
        held = {r.item.certificate_id for r in self._where(NotificationStatus.HELD)}
        return {c for c in certificate_ids if c in held}

    async def erase(self, educator_id: str) -> int:
        stopped = 0
        for row in self.state.notifications.values():
            if row.item.educator_id != educator_id:
                continue
            stopped += not row.item.final
            row.item = row.item.erase()
            row.status, row.token, row.lease_until = str(row.item.status), None, None
        return stopped

    async def save(self, n: Notification, expected: NotificationStatus) -> bool:
        row = self.state.notifications.get(n.notification_id)
        if row is None or row.item.status is not expected:
            return False
        row.item, row.status = n, str(n.status)
        if n.status is NotificationStatus.PENDING:
            row.next_attempt_at = self.clock.now
        return True

    async def find(
        self, educator_id: str | None, status: str | None, institution: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = [r.item for r in self.state.notifications.values()]
        rows = [
            n
            for n in rows
            if educator_id in (None, n.educator_id)
            and status in (None, str(n.status))
            and institution in (None, n.institution)
        ]
        return [{**vars(n), "institution": n.institution} for n in rows[:limit]]


class FakeMailQueue(_Repo):
    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedNotification]:
        now = self.clock.now
        due = sorted((r for r in self.state.notifications.values() if r.due(now)), key=lambda r: r.next_attempt_at)
        claimed = []
        for row in due[:limit]:
            row.item = row.item.start_sending()  # the domain decides whether that is legal
            row.status, row.token = "sending", uuid.uuid4()
            row.lease_until = now + timedelta(seconds=lease_seconds)
            claimed.append(ClaimedNotification(row.item, row.token))
        return claimed

    async def finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        row = self.state.notifications[claimed.notification.notification_id]
        if row.token != claimed.token:
            return False
        row.item, row.status, row.token, row.lease_until = outcome, str(outcome.status), None, None
        if outcome.status is NotificationStatus.PENDING:
            row.next_attempt_at = self.clock.now + timedelta(seconds=outcome.retry_after_seconds or 0.0)
        return True

    async def finish_many(self, outcomes: Sequence[tuple[ClaimedNotification, Notification]]) -> list[bool]:
        self.state.finish_batches.append(len(outcomes))
        return [await self.finish(claimed, outcome) for claimed, outcome in outcomes]

    async def extend(self, claimed: Sequence[ClaimedNotification], lease_seconds: float) -> int:
        extended = 0
        for c in claimed:
            row = self.state.notifications[c.notification.notification_id]
            if row.token == c.token and row.status == "sending":
                row.lease_until = self.clock.now + timedelta(seconds=lease_seconds)
                extended += 1
        return extended


class FakeWebhooks(_Repo):
    async def create(self, w: NewWebhook) -> dict[str, Any]:
        self.state.webhooks[w.webhook_id] = {**vars(w), "created_at": self.clock.now, "deleted_at": None}
        return {"webhook_id": w.webhook_id, "url": w.url, "institution": w.institution, "event_types": w.event_types}

    async def live(self) -> list[dict[str, Any]]:
        return [w for w in self.state.webhooks.values() if w["deleted_at"] is None]

    async def delete(self, webhook_id: str) -> bool:
        row = self.state.webhooks.get(webhook_id)
        if row is None or row["deleted_at"] is not None:
            return False
        row["deleted_at"] = self.clock.now
        return True

    async def matching(self, institution: str, event_type: str) -> list[str]:
        hooks = await self.live()
        return sorted(
            w["webhook_id"] for w in hooks if w["institution"] in (institution, "*") and event_type in w["event_types"]
        )


class FakeDeliveries(_Repo):
    async def add(self, d: NewDelivery) -> bool:
        if d.delivery_id in self.state.deliveries:
            return False
        self.state.deliveries[d.delivery_id] = Row(d, self.clock.now, self.clock.now)
        return True

    async def claim(self, lease_seconds: float) -> ClaimedDelivery | None:
        now = self.clock.now
        live = {w["webhook_id"]: w for w in self.state.webhooks.values() if w["deleted_at"] is None}
        due = [r for r in self.state.deliveries.values() if r.due(now) and r.item.webhook_id in live]
        if not due:
            return None
        row = min(due, key=lambda r: r.next_attempt_at)
        row.status, row.attempts, row.token = "sending", row.attempts + 1, uuid.uuid4()
        row.lease_until = now + timedelta(seconds=lease_seconds)
        d, hook = row.item, live[row.item.webhook_id]
        return ClaimedDelivery(
            d.delivery_id, d.webhook_id, hook["url"], hook["secret"], d.event_id, d.event_subject, d.body,
            row.attempts, row.token,
        )  # fmt: skip

    def _finish(self, d: ClaimedDelivery, status: str, error: str | None, after: float = 0.0) -> bool:
        row = self.state.deliveries[d.delivery_id]
        if row.token != d.token:
            return False
        row.status, row.token, row.lease_until, row.last_error = status, None, None, error
        row.next_attempt_at = self.clock.now + timedelta(seconds=after)
        return True

    async def delivered(self, d: ClaimedDelivery, status_code: int | None) -> bool:
        return self._finish(d, "delivered", None)

    async def extend(self, d: ClaimedDelivery, lease_seconds: float) -> bool:
        row = self.state.deliveries[d.delivery_id]
        if row.token != d.token or row.status != "sending":
            return False
        row.lease_until = self.clock.now + timedelta(seconds=lease_seconds)
        return True

    async def retry(self, d: ClaimedDelivery, status_code: int | None, error: str | None, after: float) -> bool:
        return self._finish(d, "pending", error, after)

    async def dead(self, d: ClaimedDelivery, status_code: int | None, error: str | None) -> bool:
        return self._finish(d, "dead", error)

    async def cancel_pending(self, webhook_id: str) -> int:
        rows = [r for r in self.state.deliveries.values() if r.item.webhook_id == webhook_id and r.status == "pending"]
        for row in rows:
            row.status = "cancelled"
        return len(rows)

    async def redrive(self, delivery_id: str) -> bool:
        row = self.state.deliveries.get(delivery_id)
        if row is None or row.status != "dead":
            return False
        row.status, row.attempts, row.next_attempt_at = "pending", 0, self.clock.now
        return True

    async def find(
        self, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = [r for r in self.state.deliveries.values() if status in (None, r.status)]
        return [{**vars(r.item), "status": r.status, "attempts": r.attempts} for r in rows][:limit]


class FakeCascade(_Repo):
    async def add_session(self, session: Session) -> bool:
        if session.session_id in self.state.sessions:
            return False
        self.state.sessions[session.session_id] = session
        return True

    async def session(self, session_id: str) -> Session | None:
        return self.state.sessions.get(session_id)

    async def add_attendance(self, session_id: str, educator_id: str, institution: str, event_id: str) -> bool:
        if (session_id, educator_id) in self.state.attendances:
            return False
        self.state.attendances[(session_id, educator_id)] = (institution, event_id)
        return True

    async def attendances(self, session_id: str) -> list[tuple[str, str, str]]:
        return sorted((e, *v) for (s, e), v in self.state.attendances.items() if s == session_id)

    async def add_completion(self, educator_id: str, course_id: str) -> bool:
        known = (educator_id, course_id) in self.state.completions
        self.state.completions.add((educator_id, course_id))
        return not known

    async def add_certified(self, educator_id: str, certificate_id: str) -> bool:
        known = (educator_id, certificate_id) in self.state.certified
        self.state.certified.add((educator_id, certificate_id))
        return not known

    def _mine(self, teacher: str, last: date) -> list[tuple[str, date]]:
        """(trainee, held_on) of the teacher's sessions held until `last`."""
        sessions = self.state.sessions
        return [
            (educator, sessions[s].held_on)
            for (s, educator) in self.state.attendances
            if s in sessions and sessions[s].master_teacher_id == teacher and sessions[s].held_on <= last
        ]

    async def master_teachers(self, held_until: date) -> list[str]:
        teachers = {s.master_teacher_id for s in self.state.sessions.values()}
        return sorted(t for t in teachers if self._mine(t, held_until))

    async def digest_facts(self, master_teacher_id: str, first: date, last: date) -> dict[str, int]:
        mine = self._mine(master_teacher_id, last)
        trainees = {e for e, _ in mine}
        return {
            "trainees": len(trainees),
            "new_trainees": len({e for e, held_on in mine if held_on >= first}),
            "sessions": sum(
                1
                for s in self.state.sessions.values()
                if s.master_teacher_id == master_teacher_id and first <= s.held_on <= last
            ),
            "trainees_completing": len(trainees & {e for e, _ in self.state.completions}),
            "trainees_certified": len(trainees & {e for e, _ in self.state.certified}),
        }

    async def claim_digest(self, master_teacher_id: str, month: str) -> bool:
        if (master_teacher_id, month) in self.state.digests:
            return False
        self.state.digests.add((master_teacher_id, month))
        return True

    async def forget(self, educator_id: str) -> None:
        state = self.state
        state.attendances = {k: v for k, v in state.attendances.items() if k[1] != educator_id}
        state.completions = {c for c in state.completions if c[0] != educator_id}
        state.certified = {c for c in state.certified if c[0] != educator_id}


@dataclass
class FakeRepositories:
    inbox: FakeInbox
    contacts: FakeContacts
    notifications: FakeNotifications
    mail: FakeMailQueue
    webhooks: FakeWebhooks
    deliveries: FakeDeliveries
    erasures: FakeErasures
    cascade: FakeCascade


class FakeUnitOfWork:
    """The same port as PostgreSQL, in memory; a block that raises rolls everything back.

    `down = True` is a database outage: every transaction is refused (`ConnectionRefusedError`, an
    infrastructure error) until it is set back; `refused` counts the attempts."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.state = FakeState()
        self.commits = 0
        self.down = False
        self.refused = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeRepositories]:
        if self.down:
            self.refused += 1
            raise ConnectionRefusedError(111, "Connect call failed (the fake database is down)")
        snapshot = copy.deepcopy(self.state)
        s, c = self.state, self.clock
        try:
            yield FakeRepositories(
                FakeInbox(s, c), FakeContacts(s, c), FakeNotifications(s, c), FakeMailQueue(s, c),
                FakeWebhooks(s, c), FakeDeliveries(s, c), FakeErasures(s, c), FakeCascade(s, c),
            )  # fmt: skip
        except BaseException:
            self.state.__dict__.update(snapshot.__dict__)
            raise
        self.commits += 1

    def notification(self, notification_id: str) -> Notification:
        return self.state.notifications[notification_id].item

    def delivery(self, delivery_id: str) -> Row:
        return self.state.deliveries[delivery_id]


class FakeMailSender:
    """Records what it was asked to send; `failures` are raised first, one per send."""

    def __init__(self, *failures: DeliveryError) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = list(failures)

    async def send(self, mail: OutgoingMail) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(mail.message())

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent if m["To"] == address]


class FakeComposer:
    """Records the language chosen for each notification; `broken` kinds cannot be rendered."""

    def __init__(self, broken: frozenset[str] = frozenset()) -> None:
        self.languages: list[str] = []
        self.broken = broken

    def compose(self, notification: Notification, contact: Contact, language: str, sender: str) -> OutgoingMail:
        if notification.kind in self.broken:
            raise ValueError(f"{notification.kind} needs a value the event did not carry")
        self.languages.append(language)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, contact.email, f"{notification.kind} ({language})"
        msg.set_content(f"Dear {contact.full_name}")
        return OutgoingMail(notification.notification_id, sender, (contact.email,), msg.as_bytes())


class FakePoster:
    """A partner endpoint answering with `statuses` in turn (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses) or [204]
        self.calls: list[tuple[str, str]] = []
        self.addresses: list[str] = []

    async def post(self, target: Target, secret: str, msg_id: str, body: bytes) -> DeliveryResult:
        self.calls.append((target.url, msg_id))
        self.addresses.append(target.address)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        ok = 200 <= status < 300
        return DeliveryResult(status, None if ok else f"HTTP {status}", ok, 1.0)


class FakeDns:
    """A DNS the test controls: `names[host]` is what the host resolves to right now."""

    def __init__(self, default: list[str] | None = None, **names: list[str]) -> None:
        self.default = default
        self.names: dict[str, list[str]] = {host.replace("_", "."): addrs for host, addrs in names.items()}

    async def __call__(self, host: str, port: int) -> list[str]:
        found = self.names.get(host, self.default)
        if found is None:
            raise OSError(f"unknown host {host}")
        return list(found)


def target_policy(
    dns: FakeDns | None = None, *, allow: tuple[str, ...] = (), platform: tuple[str, ...] = ()
) -> TargetPolicy:
    """The real target policy on a fake DNS (every name resolves to a public address by default)."""
    resolver = dns or FakeDns(default=["93.184.216.34"])
    return TargetPolicy(allow=allow, platform=platform, resolver=resolver)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[str, str]] = []

    async def webhook_failed(self, d: ClaimedDelivery, error: str) -> None:
        self.letters.append((d.delivery_id, error))
