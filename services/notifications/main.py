"""Composition root of the notifications service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.events import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED, EDUCATOR_REGISTERED
from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import CONTACTS_STREAM, EVENTS_STREAM, contact_filter, event_filter
from services.notifications.domain import ProgrammeNames
from services.notifications.handlers import NotificationHandlers
from services.notifications.http import build_router
from services.notifications.mail import MailboxSender, MailSender, SmtpSender
from services.notifications.rendering import Renderer
from services.notifications.settings import NotificationsSettings
from services.notifications.workers import MailWorker, WebhookWorkers

MIGRATIONS = Path(__file__).with_name("migrations")
CONTACT_FILTER = contact_filter()
log = get_logger(__name__)


def build_mail_sender(settings: NotificationsSettings) -> MailSender:
    """SMTP when a relay is configured; otherwise `.eml` files, so `iioe up` works with no mail server."""
    if settings.smtp_host:
        return SmtpSender(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_starttls,
            settings.smtp_user,
            settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            settings.smtp_timeout_seconds,
        )
    return MailboxSender(settings.mailbox_path)


class Workers:
    """The background senders' lifecycle: started after the runtime, stopped before it."""

    def __init__(self, runtime: ServiceRuntime, settings: NotificationsSettings) -> None:
        self._runtime = runtime
        self._settings = settings
        self.mail: MailWorker | None = None
        self.webhooks: WebhookWorkers | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        for worker in (self.mail, self.webhooks):
            if worker is not None:
                worker.wake()

    async def start(self) -> None:
        s, rt = self._settings, self._runtime
        sender = build_mail_sender(s)
        programmes = ProgrammeNames.load(s.programmes_file)
        institutions = load_institutions(s.institutions_file)
        self.mail = MailWorker(rt.pool, sender, Renderer(support_email=s.support_email), s, programmes, institutions)
        self.webhooks = WebhookWorkers(rt.pool, lambda: rt.js, s, rt.durable("webhooks"))
        self.tasks = [asyncio.create_task(self.mail.run(), name="mail-worker")]
        self.tasks += [
            asyncio.create_task(loop, name=f"webhook-worker-{i}") for i, loop in enumerate(self.webhooks.loops())
        ]
        log.info("workers started", mail_sender=repr(sender), webhook_workers=s.webhook_workers)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.webhooks is not None:
            await self.webhooks.close()

    def health(self) -> dict[str, Any]:
        return {
            "stopped_workers": [t.get_name() for t in self.tasks if t.done()],
            "mail_sent": self.mail.sent if self.mail else 0,
            "webhooks_delivered": self.webhooks.delivered if self.webhooks else 0,
            "webhooks_dead": self.webhooks.dead if self.webhooks else 0,
        }


def create_app(settings: NotificationsSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    settings = settings or NotificationsSettings(**overrides)
    runtime = ServiceRuntime(settings, MIGRATIONS)
    workers = Workers(runtime, settings)
    handlers = NotificationHandlers(runtime, settings, wake=workers.wake)
    events = [event_filter(spec.name) for spec in (EDUCATOR_REGISTERED, CERTIFICATE_ISSUED, CERTIFICATE_REVOKED)]
    runtime.add_consumer("events", EVENTS_STREAM, events, handlers.on_event)
    runtime.add_consumer("contacts", CONTACTS_STREAM, [CONTACT_FILTER], handlers.on_contact)

    def worker_health() -> dict[str, Any]:
        facts = workers.health()
        return {"ok": not facts["stopped_workers"], **facts}

    return build_service(
        runtime,
        title="IIOE notifications service",
        routers=[build_router(runtime, settings)],
        on_start=[workers.start],
        on_stop=[workers.stop],
        health=[worker_health],
        state={"workers": workers},
    )
