"""The hand-assembled e-mail (`mime.py`) reads exactly like the one the `email` package would build."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

import pytest

from services.notifications.mime import OutgoingMail, build_mail, encode_subject
from services.notifications.rendering import (
    MESSAGES,
    NOTIFICATION_ID_HEADER,
    SUPPORTED_LANGUAGES,
    RenderedMessage,
    Renderer,
)
from services.notifications.tests.test_rendering import FULL_CONTEXT

SENDER = "IIOE micro-certification <noreply@iioe.example>"


def reference(rendered: RenderedMessage, recipient: str) -> EmailMessage:
    """What the service built before (the `email` package), parsed back from its SMTP bytes."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Date"] = format_datetime(email.utils.localtime())
    msg["Message-ID"] = "<ntf-1@iioe.local>"
    msg[NOTIFICATION_ID_HEADER] = "ntf-1"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    msg["Content-Language"] = rendered.language
    parsed = email.message_from_bytes(msg.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def built(rendered: RenderedMessage, recipient: str) -> OutgoingMail:
    return build_mail(
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        language=rendered.language,
        sender=SENDER,
        recipient=recipient,
        message_id="ntf-1",
        domain="iioe.local",
        id_header=NOTIFICATION_ID_HEADER,
    )


def parsed_wire(mail: OutgoingMail) -> EmailMessage:
    parsed = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


HEADERS = ("From", "To", "Message-ID", NOTIFICATION_ID_HEADER, "Auto-Submitted", "Content-Language")


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
@pytest.mark.parametrize("recipient", ["anna@msue.example", "Батбаяр Ганболд <batbayar@num.edu.mn>"])
def test_every_message_parses_to_what_the_email_package_built(language: str, recipient: str) -> None:
    renderer = Renderer()
    for message in MESSAGES:
        rendered = renderer.render(message, language, FULL_CONTEXT)
        ours, theirs = parsed_wire(built(rendered, recipient)), reference(rendered, recipient)
        for header in HEADERS:
            assert str(ours[header]) == str(theirs[header]), (message, header)
        # exactly; the email package itself folds a space between two encoded words, where RFC 2047
        # readers drop it ("cert-7f3aдахин" in a Mongolian subject)
        assert str(ours["Subject"]) == rendered.subject
        assert ours.get_content_type() == "multipart/alternative"
        for subtype in ("plain", "html"):
            mine, ref = ours.get_body((subtype,)), theirs.get_body((subtype,))
            assert mine is not None and ref is not None
            assert mine["Content-Transfer-Encoding"] == "quoted-printable"
            assert mine.get_content_charset() == "utf-8"
            assert mine.get_content() == ref.get_content()
        assert not any(part.defects for part in ours.walk()), message


@pytest.mark.parametrize(
    "subject",
    ["Welcome", "x" * 200, "Ж" * 100, "a" * 69, "word " * 30, "Тест 😀 mixed ascii and кириллица " * 4, ""],
)
def test_subjects_survive_and_keep_lines_short(subject: str) -> None:
    rendered = RenderedMessage(subject=subject, text="t\n", html="<p>h</p>\n", language="en")
    mail = built(rendered, "a@iioe.example")
    assert str(parsed_wire(mail)["Subject"]) == subject
    assert max(len(line) for line in encode_subject(subject).split(b"\r\n")) <= 78
    assert max(mail.data) < 128


def test_bodies_keep_trailing_spaces_dots_and_long_lines() -> None:
    text = "line with trailing space \n.\nFrom the start\n" + "y" * 300 + "\n= sign and tab\t\n"
    rendered = RenderedMessage(subject="s", text=text, html="<p>x</p>", language="en")
    mail = built(rendered, "a@iioe.example")
    plain = mail.message().get_body(("plain",))
    assert plain is not None and plain.get_content() == text
    assert all(len(line) <= 76 for line in mail.data.split(b"\r\n")[12:])
    html = mail.message().get_body(("html",))
    assert html is not None and html.get_content() == "<p>x</p>\n"  # a final line break, as set_content adds


@pytest.mark.parametrize("field", ["subject", "recipient", "sender", "language"])
def test_line_breaks_in_header_values_are_refused(field: str) -> None:
    values = {"subject": "s", "recipient": "a@iioe.example", "sender": SENDER, "language": "en"}
    values[field] = values[field] + "\r\nBcc: victim@example.org"
    with pytest.raises(ValueError, match="line breaks"):
        build_mail(
            subject=values["subject"],
            text="t",
            html="h",
            language=values["language"],
            sender=values["sender"],
            recipient=values["recipient"],
            message_id="ntf-1",
            domain="iioe.local",
            id_header=NOTIFICATION_ID_HEADER,
        )


def test_the_envelope_holds_bare_addresses() -> None:
    rendered = RenderedMessage(subject="s", text="t", html="h", language="en")
    mail = built(rendered, "Батбаяр Ганболд <batbayar@num.edu.mn>")
    assert (mail.notification_id, mail.sender, mail.recipients) == (
        "ntf-1",
        "noreply@iioe.example",
        ("batbayar@num.edu.mn",),
    )
