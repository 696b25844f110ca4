"""Deliver rendered e-mails: over SMTP in production, or into a folder of .eml files for demos and tests.

Every failure is reported as `DeliveryError` with a `permanent` flag so the caller can decide between
retrying later (transient) and giving up on this one message (permanent) without knowing transports.
"""

from __future__ import annotations

import contextlib
import time

import aiosmtplib

from services.notifications.mailbox import MailboxSender
from services.notifications.mime import OutgoingMail
from services.notifications.ports import DeliveryError, MailSender

__all__ = ["DeliveryError", "MailSender", "MailboxSender", "SmtpSender"]


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


IDLE_PROBE_SECONDS = 5.0
"""A kept connection idle longer than this is checked with NOOP before a mail goes over it."""
MAX_IDLE_SECONDS = 60.0
"""Kept connections idle longer than this are closed rather than reused (relays drop idle clients)."""


class SmtpSender:
    """Sends through an SMTP relay with aiosmtplib, keeping up to `keep` connections open between mails.

    Why kept connections: connect, TLS, EHLO, AUTH and QUIT per message cost more round trips and CPU
    than the message itself (issue #11). A connection is reused only after a clean transaction or a
    refusal of one message; any other error closes it. One idle for more than `IDLE_PROBE_SECONDS`
    answers a NOOP first (a relay may have dropped it; nothing is sent on a dead one, so nothing can
    be sent twice), and one idle for more than `MAX_IDLE_SECONDS` is closed.

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
        keep: int = 8,
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
        self.keep = keep
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self.connections = 0
        """Connections opened (all time)."""

    def __repr__(self) -> str:  # never show the password in logs
        return f"SmtpSender(host={self.host!r}, port={self.port}, starttls={self.starttls})"

    async def _connection(self) -> aiosmtplib.SMTP:
        """A kept connection that still answers, else a new one (connected, TLS, logged in)."""
        now = time.monotonic()
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and now - since <= MAX_IDLE_SECONDS:
                if now - since <= IDLE_PROBE_SECONDS:
                    return client
                try:
                    await client.noop(timeout=self.timeout)
                    return client
                except (aiosmtplib.SMTPException, OSError):
                    pass
            client.close()
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            start_tls=self.starttls,
            use_tls=self.use_tls,
            timeout=self.timeout,
        )
        await client.connect()
        self.connections += 1
        return client

    def _release(self, client: aiosmtplib.SMTP, reusable: bool) -> None:
        if reusable and client.is_connected and len(self._idle) < self.keep:
            self._idle.append((client, time.monotonic()))
        else:
            client.close()

    async def close(self) -> None:
        """Say goodbye to the kept connections."""
        idle, self._idle = self._idle, []
        for client, _ in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit(timeout=1.0)
            client.close()

    async def send(self, mail: OutgoingMail) -> None:
        """Hand `mail` to the relay (envelope from `mail.sender` to `mail.recipients`).

        Only rejections of this message (sender, recipient or data refused with 5xx) are permanent.
        Connection problems, timeouts, 4xx and authentication/TLS failures are transient: they are
        about the relay or its configuration, and dropping every notification while an operator fixes
        a password would lose mail that a later retry would deliver.
        """
        client: aiosmtplib.SMTP | None = None
        reusable = False
        try:
            client = await self._connection()
            errors, _ = await client.sendmail(mail.sender, list(mail.recipients), mail.data)
            reusable = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reusable = True
            codes = [r.code for r in exc.recipients]
            details = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)  # no addresses in errors
            raise DeliveryError(
                f"SMTP recipients refused: {details}", permanent=all(_is_permanent(c) for c in codes)
            ) from exc
        except (aiosmtplib.SMTPSenderRefused, aiosmtplib.SMTPDataError, aiosmtplib.SMTPRecipientRefused) as exc:
            reusable = True
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
        finally:
            if client is not None:
                self._release(client, reusable)
        if errors:  # some recipients accepted, some refused: report the refused ones
            details = "; ".join(f"{resp.code} {resp.message}" for resp in errors.values())
            raise DeliveryError(
                f"SMTP recipients refused: {details}",
                permanent=all(_is_permanent(resp.code) for resp in errors.values()),
            )
