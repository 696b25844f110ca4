"""Templates render in every language without gaps, escape HTML, and package into a proper e-mail."""

from __future__ import annotations

import email
import shutil
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jinja2 import UndefinedError

from iioe.events import CERTIFICATE_ISSUED
from iioe.reference import load_institutions
from services.notifications.domain import Contact, Notification
from services.notifications.rendering import (
    MESSAGES,
    NOTIFICATION_ID_HEADER,
    REQUIRED_CONTEXT,
    SUPPORTED_LANGUAGES,
    TEMPLATES_DIR,
    MailComposer,
    MessageName,
    OutgoingMail,
    ProgrammeNames,
    RenderedMessage,
    Renderer,
    TemplateContextError,
    build_mail,
    format_month,
    format_number,
    resolve_language,
)

FULL_CONTEXT: dict[str, Any] = {
    "full_name": "Батбаяр Ганболд",
    "institution": "num",
    "institution_name": "Монгол Улсын Их Сургууль",
    "programme_name": "AI in Higher Education",
    "credits": 5.0,
    "certificate_id": "cert-7f3a",
    "verify_url": "https://verify.iioe.example/certificates/cert-7f3a",
    "reason": "The assessment record was entered twice.",
    "issued_at": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
    "revoked_at": datetime(2025, 4, 2, 11, 0, tzinfo=UTC),
    "at": datetime(2025, 4, 3, 8, 0, tzinfo=UTC),
    "request_id": "req-91",
    "decision": "accepted",
    "receiving_institution": "must",
    "receiving_institution_name": "Mongolian University of Science and Technology",
    "decided_at": datetime(2025, 5, 6, 10, 0, tzinfo=UTC),
    "session_id": "sess-12",
    "region": "Darkhan-Uul",
    "mode": "face_to_face",
    "held_on": "2025-03-01",
    "session_language": "mn",
    "month": "2025-03",
    "trainees": 14,
    "new_trainees": 5,
    "sessions": 2,
    "trainees_completing": 9,
    "trainees_certified": 3,
    "support_email": "help@iioe.example",
}
CERTIFICATE_MAILS = ("certificate_issued", "certificate_revoked", "certificate_suspended", "certificate_reinstated")

# A phrase each language's greeting uses, so a template filed under the wrong language is caught.
GREETING = {"mn": "Эрхэм хүндэт", "en": "Dear", "ru": "Здравствуйте"}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


def test_every_message_has_all_three_templates_in_every_language() -> None:
    for lang in SUPPORTED_LANGUAGES:
        for message in MESSAGES:
            for suffix in (".subject.txt", ".txt", ".html"):
                assert (TEMPLATES_DIR / lang / f"{message}{suffix}").is_file(), (lang, message, suffix)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
@pytest.mark.parametrize("message", MESSAGES)
def test_renders_full_context(renderer: Renderer, message: MessageName, language: str) -> None:
    out = renderer.render(message, language, FULL_CONTEXT)

    assert out.language == language
    assert out.subject and "\n" not in out.subject
    for part in (out.subject, out.text, out.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
    assert out.text.startswith(GREETING[language])
    assert FULL_CONTEXT["full_name"] in out.text and FULL_CONTEXT["full_name"] in out.html
    assert "IIOE" in out.text and "UNESCO-ICHEI" in out.text and "UNESCO-ICHEI" in out.html
    assert "help@iioe.example" in out.text and "mailto:help@iioe.example" in out.html
    assert f'<html lang="{language}">' in out.html
    if message in CERTIFICATE_MAILS:
        assert FULL_CONTEXT["certificate_id"] in out.text and FULL_CONTEXT["certificate_id"] in out.html
        assert FULL_CONTEXT["verify_url"] in out.text and f'href="{FULL_CONTEXT["verify_url"]}"' in out.html
    if message == "certificate_issued":
        assert FULL_CONTEXT["programme_name"] in out.subject
        assert "ECTS" in out.text and "ECTS" in out.html
    if message == "certificate_revoked":
        assert FULL_CONTEXT["certificate_id"] in out.subject
        assert FULL_CONTEXT["reason"] in out.text and FULL_CONTEXT["reason"] in out.html
    if message in ("certificate_suspended", "certificate_reinstated"):
        assert FULL_CONTEXT["certificate_id"] in out.subject and FULL_CONTEXT["reason"] in out.text
    if message == "credit_transfer_decided":
        assert "req-91" in out.text and "Mongolian University of Science and Technology" in out.html
        assert "ECTS" in out.text and "5" in out.text
    if message == "session_attended":
        assert "Darkhan-Uul" in out.text and "sess-12" in out.html and "face_to_face" not in out.text
    if message == "monthly_digest":
        assert "2025-03" not in out.subject and all(str(n) in out.text for n in (14, 5, 9, 3))


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
@pytest.mark.parametrize("message", MESSAGES)
def test_renders_with_only_required_context(renderer: Renderer, message: MessageName, language: str) -> None:
    """Optional values (institution name, support address, ...) default instead of hitting StrictUndefined."""
    context = {key: FULL_CONTEXT[key] for key in REQUIRED_CONTEXT[message]}
    out = renderer.render(message, language, context)
    assert "None" not in out.text and "None" not in out.html
    assert "support@iioe.example" in out.text


def test_missing_required_value_is_a_clear_error(renderer: Renderer) -> None:
    context = {k: v for k, v in FULL_CONTEXT.items() if k != "verify_url"}
    with pytest.raises(TemplateContextError, match="verify_url"):
        renderer.render("certificate_issued", "en", context)


def test_unknown_message_is_rejected(renderer: Renderer) -> None:
    with pytest.raises(ValueError, match="unknown message"):
        renderer.render("goodbye", "en", FULL_CONTEXT)  # type: ignore[arg-type]


def test_template_typo_fails_instead_of_rendering_blank(tmp_path: Path) -> None:
    for suffix, body in ((".subject.txt", "Hi"), (".txt", "Hello {{ ful_name }}"), (".html", "<p>x</p>")):
        (tmp_path / "en").mkdir(exist_ok=True)
        (tmp_path / "en" / f"welcome{suffix}").write_text(body, encoding="utf-8")
    with pytest.raises(UndefinedError):
        Renderer(templates_dir=tmp_path).render("welcome", "en", FULL_CONTEXT)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_html_escapes_names_but_text_keeps_them_verbatim(renderer: Renderer, language: str) -> None:
    name = "<script>alert('x')</script> & Co"
    out = renderer.render("certificate_issued", language, {**FULL_CONTEXT, "full_name": name})
    assert "<script>" not in out.html
    assert "&lt;script&gt;" in out.html and "&amp; Co" in out.html
    assert name in out.text


def test_unknown_language_falls_back_to_english(renderer: Renderer) -> None:
    out = renderer.render("welcome", "de", FULL_CONTEXT)
    assert out.language == "en"
    assert out.subject == "Welcome to the IIOE micro-certification programme"
    assert out.text.startswith("Dear ")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mn", "mn"),
        ("mn-MN", "mn"),
        ("RU", "ru"),
        ("ru_RU", "ru"),
        ("en-GB", "en"),
        ("de", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_resolve_language(given: str | None, expected: str) -> None:
    assert resolve_language(given) == expected


def test_dates_and_credits_follow_language_conventions() -> None:
    # 20:00 UTC on 14 March is already 15 March in Ulaanbaatar (UTC+8).
    renderer = Renderer(timezone=ZoneInfo("Asia/Ulaanbaatar"))
    context = {**FULL_CONTEXT, "issued_at": "2025-03-14T20:00:00Z", "credits": 2.5}
    assert "2025 оны 3-р сарын 15" in renderer.render("certificate_issued", "mn", context).text
    ru = renderer.render("certificate_issued", "ru", context).text
    assert "15 марта 2025 г." in ru and "Кредиты ECTS: 2,5" in ru
    en = renderer.render("certificate_issued", "en", context).text
    assert "15 March 2025" in en and "ECTS credits: 2.5" in en
    assert format_number(5.0, "en") == "5"
    assert format_number(7.25, "ru") == "7,25"


def _parse(msg: OutgoingMail) -> EmailMessage:
    parsed = email.message_from_bytes(msg.data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_build_email_has_text_and_html_alternatives_and_ids(renderer: Renderer) -> None:
    rendered = renderer.render("certificate_issued", "mn", FULL_CONTEXT)
    msg = build_mail(
        rendered,
        sender="IIOE <noreply@iioe.example>",
        recipient="Батбаяр Ганболд <batbayar@num.edu.mn>",
        message_id="ntf-01HZX3",
    )
    parsed = _parse(msg)

    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["Message-ID"] == "<ntf-01HZX3@iioe.local>"
    assert parsed[NOTIFICATION_ID_HEADER] == "ntf-01HZX3"
    assert parsed["Subject"] == rendered.subject  # Cyrillic survives RFC 2047 encoding
    assert parsed["To"].addresses[0].display_name == "Батбаяр Ганболд"
    assert parsed["Content-Language"] == "mn"
    assert parsed["Auto-Submitted"] == "auto-generated"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert plain.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert plain.get_content().replace("\r\n", "\n") == rendered.text
    assert html.get_content().replace("\r\n", "\n") == rendered.html
    assert msg.sender == "noreply@iioe.example" and msg.recipients == ("batbayar@num.edu.mn",)
    # 7-bit clean on the wire, whatever the language, and CRLF line endings only.
    assert max(msg.data) < 128 and b"\n" not in msg.data.replace(b"\r\n", b"")


@pytest.mark.parametrize("bad_id", ["", "../etc/passwd", "a b", "<x>", "id@host", ".hidden"])
def test_build_email_rejects_unsafe_notification_ids(bad_id: str) -> None:
    rendered = RenderedMessage(subject="s", text="t", html="<p>h</p>", language="en")
    with pytest.raises(ValueError, match="notification id"):
        build_mail(rendered, sender="a@iioe.example", recipient="b@iioe.example", message_id=bad_id)


@pytest.mark.parametrize("language", SUPPORTED_LANGUAGES)
def test_every_message_extends_its_languages_base_layout(language: str) -> None:
    for message in MESSAGES:
        for suffix in (".txt", ".html"):
            source = (TEMPLATES_DIR / language / f"{message}{suffix}").read_text(encoding="utf-8")
            assert source.startswith(f'{{% extends "{language}/base{suffix}" %}}'), (message, suffix)
            assert "<html" not in source and "--\n" not in source  # the layout lives in the base only


def test_a_change_to_the_base_layout_reaches_every_message(tmp_path: Path) -> None:
    shutil.copytree(TEMPLATES_DIR, tmp_path / "templates")
    for language in SUPPORTED_LANGUAGES:
        for suffix in (".txt", ".html"):
            base = tmp_path / "templates" / language / f"base{suffix}"
            source = base.read_text(encoding="utf-8")
            marker = f"FOOTER-{language}{suffix}"
            base.write_text(source.replace("{% block footer %}", "{% block footer %}" + marker + " "), encoding="utf-8")
    renderer = Renderer(templates_dir=tmp_path / "templates")
    for language in SUPPORTED_LANGUAGES:
        for message in MESSAGES:
            out = renderer.render(message, language, FULL_CONTEXT)
            if message == "welcome":  # overrides the footer: "because you registered"
                assert "FOOTER-" not in out.text and "FOOTER-" not in out.html
            else:
                assert f"FOOTER-{language}.txt" in out.text and f"FOOTER-{language}.html" in out.html
            assert out.text.startswith(GREETING[language]) and f'<html lang="{language}">' in out.html


def test_composer_adds_the_person_and_names_in_the_readers_language(tmp_path: Path) -> None:
    catalogue = tmp_path / "programmes.json"
    catalogue.write_text(
        '{"programmes": [{"id": "ai", "names": {"mn": "Хиймэл оюун", "en": "AI in HE"}}]}', encoding="utf-8"
    )
    must = load_institutions()["must"]
    composer = MailComposer(Renderer(), ProgrammeNames.load(catalogue), {"must": must})
    issued = Notification(
        notification_id="ntf-1",
        event_id="e1",
        event_type=CERTIFICATE_ISSUED.type,
        kind="certificate_issued",
        educator_id="edu-1",
        context={**{k: FULL_CONTEXT[k] for k in ("credits", "certificate_id", "verify_url")}, "institution": "must",
                 "programme_id": "ai", "issued_at": "2025-03-14T09:30:00+00:00"},
    )  # fmt: skip
    person = Contact("edu-1", "must", "Батын Сарнай", "s@must.edu.mn", "mn")

    mn = composer.context(issued, person, "mn")
    assert (mn["full_name"], mn["programme_name"], mn["institution_name"]) == (
        "Батын Сарнай",
        "Хиймэл оюун",
        must.name_mn,
    )
    ru = composer.context(issued, person, "ru")
    assert (ru["programme_name"], ru["institution_name"]) == ("AI in HE", must.name_en)  # English when no Russian name
    msg = composer.compose(issued, person, "mn", "IIOE <noreply@iioe.example>").message()
    assert msg["To"] == "s@must.edu.mn" and msg[NOTIFICATION_ID_HEADER] == "ntf-1"
    assert msg["Content-Language"] == "mn" and "Хиймэл оюун" in msg["Subject"]
    assert ProgrammeNames.load(tmp_path / "missing.json").name("ai", "mn") == "ai"  # no catalogue: the id


def test_a_rejected_credit_transfer_names_no_credits(renderer: Renderer) -> None:
    context = {**FULL_CONTEXT, "decision": "rejected", "credits": None, "reason": "programme full"}
    for language in SUPPORTED_LANGUAGES:
        out = renderer.render("credit_transfer_decided", language, context)
        assert "ECTS" not in out.text and "programme full" in out.text and "None" not in out.html


def test_months_read_naturally_in_each_language() -> None:
    assert format_month("2026-03", "en") == "March 2026"
    assert format_month("2026-03", "ru") == "март 2026 г."
    assert format_month("2026-03", "mn") == "2026 оны 3-р сар"
    assert format_month("someday", "en") == "someday"
