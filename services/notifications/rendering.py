"""Render notification templates in the educator's language and package them as e-mails.

Templates live in `templates/<lang>/<message>.{subject.txt,txt,html}`; each language is written by
hand (not machine-translated at runtime) so educators read natural Mongolian, English or Russian.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, Literal, get_args

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

MessageName = Literal["welcome", "certificate_issued", "certificate_revoked"]
MESSAGES: Final[tuple[MessageName, ...]] = get_args(MessageName)

SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = ("mn", "en", "ru")
FALLBACK_LANGUAGE: Final = "en"
DEFAULT_SUPPORT_EMAIL: Final = "support@iioe.example"
MESSAGE_ID_DOMAIN: Final = "iioe.local"
NOTIFICATION_ID_HEADER: Final = "X-IIOE-Notification-Id"
TEMPLATES_DIR: Final = Path(__file__).parent / "templates"

REQUIRED_CONTEXT: Final[Mapping[MessageName, frozenset[str]]] = {
    "welcome": frozenset({"full_name", "institution"}),
    "certificate_issued": frozenset(
        {"full_name", "programme_name", "credits", "certificate_id", "verify_url", "issued_at"}
    ),
    "certificate_revoked": frozenset({"full_name", "certificate_id", "reason", "revoked_at"}),
}
"""Keys a caller must supply; a missing one is a bug upstream, so it fails loudly instead of rendering blanks."""

OPTIONAL_CONTEXT: Final[Mapping[str, Any]] = {
    "institution": None,
    "institution_name": None,
    "programme_name": None,
    "verify_url": None,
}
"""Keys templates test with `{% if %}`; defaulted so StrictUndefined still catches typos in templates."""

# Notification ids become Message-ID local parts and mailbox file names, so only a safe subset is allowed.
_NOTIFICATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

_MONTHS_EN: Final = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
# Russian dates use the genitive month ("14 марта 2025 г.").
_MONTHS_RU: Final = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)


class TemplateContextError(ValueError):
    """The caller left out a value the chosen message needs."""


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One notification ready to send; `language` is the one actually used (after fallback)."""

    subject: str
    text: str
    html: str
    language: str


def resolve_language(language: str | None) -> str:
    """Pick the template language: `mn-MN`/`RU` normalise to `mn`/`ru`; anything unknown reads English."""
    if not language:
        return FALLBACK_LANGUAGE
    primary = language.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if primary in SUPPORTED_LANGUAGES else FALLBACK_LANGUAGE


def validate_notification_id(notification_id: str) -> str:
    """Reject ids that would corrupt a Message-ID header or escape the mailbox folder as a file name."""
    if not _NOTIFICATION_ID.fullmatch(notification_id):
        raise ValueError(
            f"notification id {notification_id!r} must match {_NOTIFICATION_ID.pattern} "
            "(it becomes a Message-ID and a file name)"
        )
    return notification_id


def _to_datetime(value: Any) -> datetime | date | None:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def format_date(value: Any, language: str, tz: tzinfo = UTC) -> str:
    """Human date in the reader's conventions; times are shown in `tz` so the day matches their calendar."""
    moment = _to_datetime(value)
    if moment is None:
        return str(value)
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        moment = aware.astimezone(tz).date()
    if language == "mn":
        return f"{moment.year} оны {moment.month}-р сарын {moment.day}"
    if language == "ru":
        return f"{moment.day} {_MONTHS_RU[moment.month - 1]} {moment.year} г."
    return f"{moment.day} {_MONTHS_EN[moment.month - 1]} {moment.year}"


def format_number(value: Any, language: str) -> str:
    """Credits without float noise (`5.0` → `5`, `2.50` → `2.5`); Russian writes a decimal comma."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return str(value)
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    text = f"{number:.2f}".rstrip("0").rstrip(".")
    return text.replace(".", ",") if language == "ru" else text


class Renderer:
    """Renders the three notification messages from hand-written templates.

    Autoescaping is on for `.html` only: plain-text bodies and subjects must show names verbatim,
    while HTML must never let an educator's name inject markup. `StrictUndefined` turns a template
    typo into an error at test time rather than a blank in someone's inbox.
    """

    def __init__(
        self,
        *,
        support_email: str = DEFAULT_SUPPORT_EMAIL,
        timezone: tzinfo = UTC,
        templates_dir: Path = TEMPLATES_DIR,
    ) -> None:
        self.support_email = support_email
        self.timezone = timezone
        self.env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

        @pass_context
        def date_filter(ctx: Context, value: Any) -> str:
            return format_date(value, ctx["language"], self.timezone)

        @pass_context
        def number_filter(ctx: Context, value: Any) -> str:
            return format_number(value, ctx["language"])

        self.env.filters["fmt_date"] = date_filter
        self.env.filters["fmt_number"] = number_filter

    def render(self, message: MessageName, language: str | None, context: Mapping[str, Any]) -> RenderedMessage:
        """Render subject, text and HTML of `message` in the educator's language (English if unsupported)."""
        if message not in MESSAGES:
            raise ValueError(f"unknown message {message!r}; expected one of {', '.join(MESSAGES)}")
        missing = sorted(REQUIRED_CONTEXT[message] - context.keys())
        if missing:
            raise TemplateContextError(f"{message} needs context keys: {', '.join(missing)}")
        lang = resolve_language(language)
        values: dict[str, Any] = {**OPTIONAL_CONTEXT, "support_email": self.support_email, **context}
        values["language"] = lang
        if values.get("support_email") is None:
            values["support_email"] = self.support_email
        subject = self.env.get_template(f"{lang}/{message}.subject.txt").render(values)
        text = self.env.get_template(f"{lang}/{message}.txt").render(values)
        html = self.env.get_template(f"{lang}/{message}.html").render(values)
        return RenderedMessage(
            subject=" ".join(subject.split()),  # one line: a newline in a header would be rejected
            text=text,
            html=html,
            language=lang,
        )


def build_email(
    rendered: RenderedMessage,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    domain: str = MESSAGE_ID_DOMAIN,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """Wrap a rendered message as multipart/alternative (text first, HTML preferred by clients).

    `message_id` is the notification id: the same notification always gets the same Message-ID, so
    a redelivery after a crash is recognisable as a duplicate by mail servers and by people.
    """
    validate_notification_id(message_id)
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = recipient
    msg["Date"] = format_datetime(sent_at or datetime.now(UTC))
    msg["Message-ID"] = f"<{message_id}@{domain}>"
    msg[NOTIFICATION_ID_HEADER] = message_id
    # RFC 3834: stops out-of-office replies from bouncing back to an unattended sender.
    msg["Auto-Submitted"] = "auto-generated"
    # quoted-printable keeps the parts 7-bit clean for relays without 8BITMIME.
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # Set after the parts: set_content() drops existing Content-* headers.
    msg["Content-Language"] = rendered.language
    return msg
