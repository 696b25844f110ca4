"""The batch paths (issue #11) decide what the one-by-one paths decide, and fail one mail at a time.

- `BatchUseCases.record_events` / `apply_contacts` against `record_event` / `apply_contact` on twin fakes;
- the consumer's batch handler keeps stream order around an erasure;
- `MailDelivery` records the outcomes of a batch together, and one failing mail (at the relay, or
  while its outcome is written) leaves the others sent exactly once;
- the mailbox writes concurrent mails in one batch, and one unwritable file fails alone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from iioe.envelope import make_event
from iioe.events import EDUCATOR_ERASED, EDUCATOR_REGISTERED, EducatorErased, EducatorRegistered
from iioe.runtime.consumer import ReceivedEvent
from services.notifications.batches import BatchUseCases
from services.notifications.domain import Contact, NotificationStatus, RetrySchedule
from services.notifications.handlers import NotificationHandlers
from services.notifications.mailbox import MailboxSender, write_batch
from services.notifications.mime import OutgoingMail
from services.notifications.ports import ClaimedNotification, DeliveryError
from services.notifications.sending import MailDelivery
from services.notifications.tests.fakes import FakeMailQueue
from services.notifications.tests.test_programme import revoked
from services.notifications.tests.test_usecases import T0, Platform, issued, registered
from services.notifications.usecases import ContactReceived, EventToNotify, NotificationUseCases, RegisterWebhook

S = NotificationStatus


def batches(p: Platform) -> BatchUseCases:
    return BatchUseCases(p.uow, certification_url="https://cert.example")


async def prepared() -> Platform:
    p = Platform()
    for educator in ("edu-1", "edu-2", "edu-4"):
        await p.contact(educator, language="ru")
    await p.usecases.erase_educator("edu-4", T0)
    await p.usecases.register_webhook(
        RegisterWebhook("wh-1", "https://lms.example/h", "must", [issued("x").event_type], "s")
    )
    return p


def rows(p: Platform) -> dict[str, tuple[Any, ...]]:
    return {
        key: (str(n.status), n.recipient, n.language, dict(n.context), n.kind, n.educator_id)
        for key, n in ((k, r.item) for k, r in p.uow.state.notifications.items())
    }


async def test_a_batch_of_events_decides_what_single_events_decide() -> None:
    first = registered("edu-1")
    events: list[EventToNotify] = [
        first,
        issued("edu-2"),
        revoked("edu-2"),  # the issued mail is not sent yet: held
        registered("edu-3"),  # no contact yet: awaiting it
        registered("edu-4"),  # erased: no mail, the webhook (none for this type) would still go
        issued("edu-4"),  # erased: no mail, but the partner's webhook
        first,  # the same event twice in one batch
    ]
    single, batched = await prepared(), await prepared()
    for event in events:
        await single.usecases.record_event(event)
    inserted = await batches(batched).record_events(events)

    assert rows(batched) == rows(single)
    assert (
        set(batched.uow.state.deliveries) == set(single.uow.state.deliveries) and len(single.uow.state.deliveries) == 2
    )
    assert batched.uow.state.inbox == single.uow.state.inbox
    statuses = sorted(str(n.status) for n in inserted)
    assert statuses == ["awaiting_contact", "held", "pending", "pending"]
    assert await batches(batched).record_events(events) == []  # a redelivered batch changes nothing


async def test_a_batch_of_contacts_decides_what_single_contacts_decide() -> None:
    def contact(educator: str, email: str, hour: int) -> ContactReceived:
        return ContactReceived(Contact(educator, "must", "N", email, "mn"), T0.replace(hour=hour))

    received = [
        contact("edu-3", "new@must.mn", 2),
        contact("edu-3", "old@must.mn", 1),  # older, arriving late: ignored
        contact("edu-4", "erased@must.mn", 1),  # erased: ignored
        contact("edu-5", "five@must.mn", 1),
    ]
    single, batched = await prepared(), await prepared()
    for p in (single, batched):
        await p.usecases.record_event(registered("edu-3", event_id="r3"))
    for one in received:
        await single.usecases.apply_contact(one)
    assert await batches(batched).apply_contacts(received) == 1  # edu-3's welcome mail may go

    assert rows(batched) == rows(single)
    assert {k: c for k, (c, _) in batched.uow.state.contacts.items()} == {
        k: c for k, (c, _) in single.uow.state.contacts.items()
    }
    assert batched.uow.state.contacts["edu-3"][0].email == "new@must.mn" and "edu-4" not in batched.uow.state.contacts


def received(data: EducatorRegistered | EducatorErased, spec: Any, seq: int) -> ReceivedEvent:
    event = make_event(data, event_type=spec.type, source="urn:iioe:test", subject=data.educator_id)
    return ReceivedEvent(
        spec=spec, event=event, subject=spec.subject(data.institution), stream_seq=seq, num_delivered=1
    )


async def test_the_consumer_batch_keeps_an_erasure_between_two_events_of_the_same_person() -> None:
    p = await prepared()
    handlers = NotificationHandlers(p.usecases, batches(p))
    welcome = EducatorRegistered(
        educator_id="edu-1", institution="must", language="en", role="educator", registered_at=T0
    )
    other = welcome.model_copy(update={"educator_id": "edu-2"})
    erased = EducatorErased(educator_id="edu-2", institution="must", erased_at=T0)
    again = welcome.model_copy(update={"educator_id": "edu-2", "role": "master_teacher"})
    await handlers.on_events(
        [
            received(welcome, EDUCATOR_REGISTERED, 1),
            received(other, EDUCATOR_REGISTERED, 2),
            received(erased, EDUCATOR_ERASED, 3),
            received(again, EDUCATOR_REGISTERED, 4),  # after the erasure: no mail
        ]
    )
    by_person = sorted((n.item.educator_id, str(n.item.status)) for n in p.uow.state.notifications.values())
    assert by_person == [("edu-1", "pending"), ("edu-2", "expired")]


async def test_one_refused_mail_in_a_batch_leaves_the_others_sent_exactly_once() -> None:
    p = Platform()
    relay = RefuseOne("edu-3@must.edu.mn")
    p.mail = MailDelivery(
        p.uow, relay, p.composer, RetrySchedule(1.0, 4.0, 5), mail_from="x@iioe.example", lease_seconds=60
    )
    ids = []
    for n in range(1, 6):
        await p.contact(f"edu-{n}")
        ids.append((await p.usecases.record_event(registered(f"edu-{n}"))).notification_id)

    assert await p.mail.send_due() == 5
    sent = [i for i in ids if p.status(i) is S.SENT]
    assert len(sent) == 4 and p.status(ids[2]) is S.PENDING  # the refused one waits for its retry
    assert p.uow.state.finish_batches == [5]  # all outcomes in one transaction
    assert sorted(relay.delivered) == sorted(f"edu-{n}@must.edu.mn" for n in (1, 2, 4, 5))
    assert await p.mail.send_due() == 0  # nothing is sent again


class RefuseOne:
    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.delivered: list[str] = []

    async def send(self, mail: OutgoingMail) -> None:
        if mail.recipients == (self.refused,):
            raise DeliveryError("451 try later", permanent=False)
        self.delivered.extend(mail.recipients)


async def test_an_outcome_the_database_refuses_does_not_keep_the_others_from_being_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Platform()
    ids = []
    for n in range(1, 4):
        await p.contact(f"edu-{n}")
        ids.append((await p.usecases.record_event(registered(f"edu-{n}"))).notification_id)
    finish_many = FakeMailQueue.finish_many

    async def picky(self: FakeMailQueue, outcomes: Sequence[tuple[ClaimedNotification, Any]]) -> list[bool]:
        if any(c.notification.notification_id == ids[1] for c, _ in outcomes):
            raise RuntimeError("a row the database refuses")
        return await finish_many(self, outcomes)

    monkeypatch.setattr(FakeMailQueue, "finish_many", picky)
    assert await p.mail.send_due() == 3
    assert [p.status(i) for i in ids] == [S.SENT, S.SENDING, S.SENT]  # the bad one comes back after its lease
    assert p.uow.state.finish_batches == [1, 1]  # the batch failed, then one by one


def mail(notification_id: str) -> OutgoingMail:
    return OutgoingMail(
        notification_id, "a@iioe.example", ("b@iioe.example",), f"Subject: {notification_id}\r\n\r\nx\r\n".encode()
    )


async def test_the_mailbox_writes_concurrent_mails_in_one_batch(tmp_path: Path) -> None:
    box = MailboxSender(tmp_path / "box")
    await asyncio.gather(*(box.send(mail(f"ntf-{n}")) for n in range(20)))
    assert box.batches == [20]
    assert sorted(os.listdir(tmp_path / "box")) == sorted(f"ntf-{n}.eml" for n in range(20))  # no temp files
    assert (tmp_path / "box" / "ntf-7.eml").read_bytes() == mail("ntf-7").data


async def test_one_unwritable_mail_fails_alone(tmp_path: Path) -> None:
    box = MailboxSender(tmp_path)
    (tmp_path / "ntf-2.eml").mkdir()  # a directory in the way of one mail's file
    results = await asyncio.gather(*(box.send(mail(f"ntf-{n}")) for n in range(4)), return_exceptions=True)
    failed = [r for r in results if isinstance(r, DeliveryError)]
    assert len(failed) == 1 and not failed[0].permanent and "ntf-2" in failed[0].message
    files = sorted(name for name in os.listdir(tmp_path) if name != "ntf-2.eml")
    assert files == ["ntf-0.eml", "ntf-1.eml", "ntf-3.eml"]


def test_a_failed_barrier_stores_nothing_and_leaves_no_temp_files(tmp_path: Path) -> None:
    def broken(folder_fd: int, file_fds: Sequence[int]) -> None:
        raise OSError(5, "I/O error")

    errors = write_batch(tmp_path, [(tmp_path / f"ntf-{n}.eml", b"x") for n in range(3)], broken)
    assert all(isinstance(e, OSError) for e in errors) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("count", [1, 3])
def test_the_portable_barrier_writes_the_same_files(tmp_path: Path, count: int) -> None:
    from services.notifications.mailbox import fsync_each

    items = [(tmp_path / f"ntf-{n}.eml", f"mail {n}".encode()) for n in range(count)]
    assert write_batch(tmp_path, items, fsync_each) == [None] * count
    assert [p.read_bytes() for p, _ in items] == [d for _, d in items]


async def test_an_erasure_during_the_mailbox_write_leaves_no_copy(tmp_path: Path) -> None:
    p = Platform()
    box = MailboxSender(tmp_path)
    usecases = NotificationUseCases(
        p.uow, certification_url="https://cert.example", contact_wait_seconds=60, stored_mail=box
    )

    class EraseMeanwhile:
        """The erasure commits (and deletes the person's files) while the mail is on its way to disk."""

        async def send(self, mail: OutgoingMail) -> None:
            await usecases.erase_educator("edu-1", T0)
            await box.send(mail)

    await p.contact("edu-1")
    recorded = await p.usecases.record_event(registered("edu-1"))
    worker = MailDelivery(
        p.uow, EraseMeanwhile(), p.composer, RetrySchedule(1.0, 4.0, 5), mail_from="x@iioe.example",
        lease_seconds=60, stored_mail=box,
    )  # fmt: skip
    assert await worker.send_due() == 1
    assert p.status(recorded.notification_id) is S.EXPIRED and os.listdir(tmp_path) == []
