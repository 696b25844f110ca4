"""E-mail delivery against a real SMTP server (aiosmtpd) and into a mailbox folder."""

from __future__ import annotations

import asyncio
import email
import socket
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from services.notifications.mail import DeliveryError, MailboxSender, MailSender, SmtpSender
from services.notifications.rendering import NOTIFICATION_ID_HEADER, OutgoingMail, Renderer, build_mail

CONTEXT: dict[str, Any] = {
    "full_name": "Анна Петрова",
    "institution": "msue",
    "institution_name": None,
    "support_email": "support@iioe.example",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def file_names(folder: Path) -> list[str]:
    return sorted(f.name for f in folder.iterdir())


def make_message(notification_id: str = "ntf-001", recipient: str = "anna@msue.example") -> OutgoingMail:
    rendered = Renderer().render("welcome", "ru", CONTEXT)
    return build_mail(rendered, sender="IIOE <noreply@iioe.example>", recipient=recipient, message_id=notification_id)


class CollectingHandler:
    """Accepts mail like a relay would; some addresses are refused to exercise error mapping."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[CollectingHandler, int]]:
    handler = CollectingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def test_senders_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MailboxSender(tmp_path), MailSender)
    assert isinstance(SmtpSender("127.0.0.1", 25, starttls=False), MailSender)


async def test_mailbox_writes_a_parseable_eml(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"  # created on demand
    sender = MailboxSender(folder)
    msg = make_message("ntf-abc.1")

    await sender.send(msg)

    assert file_names(folder) == ["ntf-abc.1.eml"]  # no temp files left behind
    raw = await asyncio.to_thread((folder / "ntf-abc.1.eml").read_bytes)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Message-ID"] == "<ntf-abc.1@iioe.local>"
    assert parsed[NOTIFICATION_ID_HEADER] == "ntf-abc.1"
    assert parsed["Subject"] == msg.message()["Subject"]
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and "Здравствуйте, Анна Петрова!" in plain.get_content()
    assert html is not None and "<html" in html.get_content()
    assert b"\r\n" in raw


async def test_mailbox_redelivery_overwrites_the_same_file(tmp_path: Path) -> None:
    sender = MailboxSender(tmp_path)
    await sender.send(make_message("ntf-dup"))
    await sender.send(make_message("ntf-dup"))
    assert file_names(tmp_path) == ["ntf-dup.eml"]


@pytest.mark.parametrize("bad_id", ["", "../escape", "a/b"])
async def test_mailbox_rejects_missing_or_unsafe_ids_permanently(tmp_path: Path, bad_id: str) -> None:
    msg = OutgoingMail(bad_id, "noreply@iioe.example", ("anna@msue.example",), b"Subject: x\r\n\r\nx\r\n")
    with pytest.raises(DeliveryError) as info:
        await MailboxSender(tmp_path / "box").send(msg)
    assert info.value.permanent
    assert not (tmp_path / "escape.eml").exists()


async def test_mailbox_disk_failure_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("file in the way", encoding="utf-8")
    with pytest.raises(DeliveryError) as info:
        await MailboxSender(blocker / "box").send(make_message())
    assert not info.value.permanent


async def test_smtp_delivers_to_a_real_server(smtp_server: tuple[CollectingHandler, int]) -> None:
    handler, port = smtp_server
    before = len(handler.envelopes)
    msg = make_message("ntf-smtp-1")

    await SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(msg)

    assert len(handler.envelopes) == before + 1
    envelope = handler.envelopes[-1]
    assert envelope.mail_from == "noreply@iioe.example"
    assert envelope.rcpt_tos == ["anna@msue.example"]
    received = email.message_from_bytes(envelope.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    assert received[NOTIFICATION_ID_HEADER] == "ntf-smtp-1"
    assert received["Subject"] == "Добро пожаловать в программу микросертификации IIOE"
    assert received.get_body(("plain",)) is not None and received.get_body(("html",)) is not None


async def test_smtp_5xx_rejection_is_permanent(smtp_server: tuple[CollectingHandler, int]) -> None:
    _, port = smtp_server
    with pytest.raises(DeliveryError) as info:
        await SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(
            make_message(recipient="nobody@msue.example")
        )
    assert info.value.permanent
    assert "550" in info.value.message


async def test_smtp_4xx_rejection_is_transient(smtp_server: tuple[CollectingHandler, int]) -> None:
    _, port = smtp_server
    with pytest.raises(DeliveryError) as info:
        await SmtpSender("127.0.0.1", port, starttls=False, timeout=5).send(make_message(recipient="busy@msue.example"))
    assert not info.value.permanent
    assert "450" in info.value.message


async def test_smtp_connection_refused_is_transient() -> None:
    port = free_port()  # nothing listens here any more
    with pytest.raises(DeliveryError) as info:
        await SmtpSender("127.0.0.1", port, starttls=False, timeout=2).send(make_message())
    assert not info.value.permanent


def test_smtp_repr_hides_password() -> None:
    assert "s3cret" not in repr(SmtpSender("smtp.example", 587, True, "user", "s3cret"))


async def test_smtp_keeps_one_connection_across_mails_and_refusals(smtp_server: tuple[CollectingHandler, int]) -> None:
    handler, port = smtp_server
    before = len(handler.envelopes)
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=5)
    await sender.send(make_message("ntf-keep-1"))
    with pytest.raises(DeliveryError):
        await sender.send(make_message("ntf-keep-2", recipient="nobody@msue.example"))  # refused: envelope reset
    await sender.send(make_message("ntf-keep-3"))
    assert sender.connections == 1
    ids = [email.message_from_bytes(e.content)[NOTIFICATION_ID_HEADER] for e in handler.envelopes[before:]]
    assert ids == ["ntf-keep-1", "ntf-keep-3"]
    await sender.close()


async def test_smtp_reconnects_when_a_kept_connection_was_closed(smtp_server: tuple[CollectingHandler, int]) -> None:
    handler, port = smtp_server
    sender = SmtpSender("127.0.0.1", port, starttls=False, timeout=5)
    await sender.send(make_message("ntf-drop-1"))
    [(client, _)] = sender._idle
    await client.quit()  # closed while idle
    await sender.send(make_message("ntf-drop-2"))
    assert sender.connections == 2
    assert email.message_from_bytes(handler.envelopes[-1].content)[NOTIFICATION_ID_HEADER] == "ntf-drop-2"
    await sender.close()
