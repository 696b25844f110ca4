"""Render notification templates in the educator's language and package them as e-mails.

Templates live in `templates/<lang>/<message>.{subject.txt,txt,html}`; each language is written by
hand (not machine-translated at runtime) so educators read natural Mongolian, English or Russian.
Every text and HTML message extends its language's `base.txt` / `base.html` (greeting, sign-off,
footer and the HTML frame live there once), filling the blocks `title`, `heading` and `body`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, cast

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from iioe.reference import Institution
from iioe.runtime.logging import get_logger
from services.notifications import mime
from services.notifications.domain import (
    FALLBACK_LANGUAGE,
    MESSAGES,
    SUPPORTED_LANGUAGES,
    Contact,
    MessageName,
    Notification,
    resolve_language,
    validate_notification_id,
)
from services.notifications.mime import OutgoingMail

__all__ = [
    "FALLBACK_LANGUAGE",
    "MESSAGES",
    "SUPPORTED_LANGUAGES",
    "MessageName",
    "OutgoingMail",
    "resolve_language",
    "validate_notification_id",
]
log = get_logger(__name__)

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
    "certificate_suspended": frozenset({"full_name", "certificate_id", "at"}),
    "certificate_reinstated": frozenset({"full_name", "certificate_id", "at"}),
    "credit_transfer_decided": frozenset(
        {"full_name", "request_id", "decision", "receiving_institution", "decided_at"}
    ),
    "session_attended": frozenset({"full_name", "session_id", "region", "mode", "held_on"}),
    "monthly_digest": frozenset(
        {"full_name", "month", "trainees", "new_trainees", "sessions", "trainees_completing", "trainees_certified"}
    ),
}
"""Keys a caller must supply; a missing one is a bug upstream, so it fails loudly instead of rendering blanks."""

OPTIONAL_CONTEXT: Final[Mapping[str, Any]] = {
    "institution": None,
    "institution_name": None,
    "programme_name": None,
    "verify_url": None,
    "reason": None,
    "credits": None,
    "receiving_institution_name": None,
    "session_language": None,
}
"""Keys templates test with `{% if %}`; defaulted so StrictUndefined still catches typos in templates."""

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


_MONTHS_RU_NOMINATIVE: Final = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)


def format_month(value: Any, language: str) -> str:
    """`2026-03` → `March 2026` / `март 2026 г.` / `2026 оны 3-р сар`; anything else as given."""
    try:
        year, month = (int(part) for part in str(value).split("-", 1))
        if not 1 <= month <= 12:
            raise ValueError(value)
    except ValueError:
        return str(value)
    if language == "mn":
        return f"{year} оны {month}-р сар"
    if language == "ru":
        return f"{_MONTHS_RU_NOMINATIVE[month - 1]} {year} г."
    return f"{_MONTHS_EN[month - 1]} {year}"


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
            # templates ship with the code: compiled once, never stat()ed again per mail
            auto_reload=False,
        )

        @pass_context
        def date_filter(ctx: Context, value: Any) -> str:
            return format_date(value, ctx["language"], self.timezone)

        @pass_context
        def number_filter(ctx: Context, value: Any) -> str:
            return format_number(value, ctx["language"])

        @pass_context
        def month_filter(ctx: Context, value: Any) -> str:
            return format_month(value, ctx["language"])

        self.env.filters["fmt_date"] = date_filter
        self.env.filters["fmt_number"] = number_filter
        self.env.filters["fmt_month"] = month_filter

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


def build_mail(
    rendered: RenderedMessage,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    domain: str = MESSAGE_ID_DOMAIN,
    sent_at: datetime | None = None,
) -> OutgoingMail:
    """Wrap a rendered message as multipart/alternative (text first, HTML preferred by clients).

    `message_id` is the notification id: the same notification always gets the same Message-ID, so
    a redelivery after a crash is recognisable as a duplicate by mail servers and by people. Both
    parts are UTF-8 quoted-printable, 7-bit clean for relays without 8BITMIME (`mime.py` says why
    the bytes are written by hand)."""
    return mime.build_mail(
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        language=rendered.language,
        sender=sender,
        recipient=recipient,
        message_id=message_id,
        domain=domain,
        id_header=NOTIFICATION_ID_HEADER,
        sent_at=sent_at,
    )


@dataclass(frozen=True)
class ProgrammeNames:
    """Programme display names per language, read from the programme catalogue file.

    The file is reference data shipped in the repository; reading it is not calling the certification
    service's code or database. Without it, the id is shown.
    """

    names: dict[str, dict[str, str]]

    @classmethod
    def load(cls, path: Path | None) -> ProgrammeNames:
        if path is None or not path.is_file():
            log.info("programme catalogue not found, showing programme ids", path=str(path))
            return cls({})
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            names = {p["id"]: dict(p.get("names", {})) for p in raw.get("programmes", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("programme catalogue unreadable, showing programme ids", path=str(path), error=repr(exc))
            return cls({})
        return cls(names)

    def name(self, programme_id: str | None, language: str) -> str | None:
        if programme_id is None:
            return None
        names = self.names.get(programme_id, {})
        return names.get(language) or names.get(FALLBACK_LANGUAGE) or programme_id


class MailComposer:
    """The `Composer` port: the stored event facts plus what depends on the person and their language."""

    def __init__(self, renderer: Renderer, programmes: ProgrammeNames, institutions: Mapping[str, Institution]) -> None:
        self._renderer = renderer
        self._programmes = programmes
        self._institutions = institutions

    def context(self, notification: Notification, contact: Contact, language: str) -> dict[str, Any]:
        context = dict(notification.context)
        institution = self._institutions.get(str(context.get("institution")))
        if institution is not None:
            context["institution_name"] = institution.name_mn if language == "mn" else institution.name_en
        receiving = self._institutions.get(str(context.get("receiving_institution")))
        if receiving is not None:
            context["receiving_institution_name"] = receiving.name_mn if language == "mn" else receiving.name_en
        context["programme_name"] = self._programmes.name(context.get("programme_id"), language)
        context["full_name"] = contact.full_name
        return context

    def compose(self, notification: Notification, contact: Contact, language: str, sender: str) -> OutgoingMail:
        rendered = self._renderer.render(
            cast(MessageName, notification.kind), language, self.context(notification, contact, language)
        )
        return build_mail(rendered, sender=sender, recipient=contact.email, message_id=notification.notification_id)
