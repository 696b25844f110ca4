"""Deliver rendered e-mails: over SMTP in production, or into a folder of .eml files for demos and tests.

Every failure is reported as `DeliveryError` with a `permanent` flag so the caller can decide between
retrying later (transient) and giving up on this one message (permanent) without knowing transports.
"""

from __future__ import annotations

import aiosmtplib

from services.notifications.mailbox import MailboxSender
from services.notifications.mime import OutgoingMail
from services.notifications.ports import DeliveryError, MailSender

__all__ = ["DeliveryError", "MailSender", "MailboxSender", "SmtpSender"]


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


class SmtpSender:
    """Sends through an SMTP relay with aiosmtplib; one connection per message keeps it stateless.

    `starttls=True` requires the upgrade (fails if the server does not offer it); `False` sends in the
    clear, which is only meant for a local relay or a test server. `use_tls` is implicit TLS (port 465).
    """

    def __init__(
        self,
        host: str,
        port: int,
        starttls: bool,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        *,
        use_tls: bool = False,
    ) -> None:
        if starttls and use_tls:
            raise ValueError("choose either STARTTLS or implicit TLS, not both")
        self.host = host
        self.port = port
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.use_tls = use_tls

    def __repr__(self) -> str:  # never show the password in logs
        return f"SmtpSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    async def send(self, mail: OutgoingMail) -> None:
        """Hand `mail` to the relay (envelope from `mail.sender` to `mail.recipients`).

        Only rejections of this message (sender, recipient or data refused with 5xx) are permanent.
        Connection problems, timeouts, 4xx and authentication/TLS failures are transient: they are
        about the relay or its configuration, and dropping every notification while an operator fixes
        a password would lose mail that a later retry would deliver.
        """
        try:
            errors, _ = await aiosmtplib.send(
                mail.data,
                sender=mail.sender,
                recipients=list(mail.recipients),
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                start_tls=self.starttls,
                use_tls=self.use_tls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            details = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)  # no addresses in errors
            raise DeliveryError(
                f"SMTP recipients refused: {details}", permanent=all(_is_permanent(c) for c in codes)
            ) from exc
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError, aiosmtplib.SMTPRecipientRefused) as exc:
            raise DeliveryError(
                f"SMTP server rejected the message: {exc.code} {exc.message}",
                permanent=_is_permanent(exc.code),
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP authentication failed: {exc.code} {exc.message}", permanent=False) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise DeliveryError(f"SMTP timeout talking to {self.host}:{self.port}: {exc}", permanent=False) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP error: {exc.code} {exc.message}", permanent=False) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"SMTP connection to {self.host}:{self.port} failed: {type(exc).__name__}: {exc}",
                permanent=False,
            ) from exc
        if errors:  # some recipients accepted, some refused: report the refused ones
            details = "; ".join(f"{resp.code} {resp.message}" for resp in errors.values())
            raise DeliveryError(
                f"SMTP recipients refused: {details}",
                permanent=all(_is_permanent(resp.code) for resp in errors.values()),
            )
