"""Composition root of the notifications service: real adapters wired to the use cases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from iioe.events import BY_TYPE, COURSE_COMPLETED, EDUCATOR_ERASED, TRAINEE_ATTENDED, TRAINING_SESSION_HELD
from iioe.reference import load_institutions
from iioe.runtime.builder import build_service
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import CONTACTS_STREAM, EVENTS_STREAM, contact_filter, event_filter
from services.notifications.batches import BatchUseCases
from services.notifications.domain import MESSAGE_FOR_TYPE, RetrySchedule
from services.notifications.handlers import NotificationHandlers
from services.notifications.http import build_router
from services.notifications.mail import MailboxSender, MailSender, SmtpSender
from services.notifications.rendering import MailComposer, ProgrammeNames, Renderer
from services.notifications.sending import MailDelivery, WebhookDelivery
from services.notifications.settings import NotificationsSettings
from services.notifications.store import PostgresUnitOfWork
from services.notifications.targets import TargetPolicy, platform_urls
from services.notifications.usecases import NotificationUseCases
from services.notifications.webhooks import HttpWebhookPoster
from services.notifications.workers import NatsDeadLetters, PollLoop

MIGRATIONS = Path(__file__).with_name("migrations")
CONTACT_FILTER = contact_filter()
CONSUMED = (EDUCATOR_ERASED, TRAINING_SESSION_HELD, TRAINEE_ATTENDED, COURSE_COMPLETED)
"""Consumed besides the types that trigger a mail (`MESSAGE_FOR_TYPE`)."""
EXPIRY_SWEEP_SECONDS = 60.0


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
            keep=settings.mail_concurrency,
        )
    return MailboxSender(settings.mailbox_path)


def create_app(settings: NotificationsSettings | None = None, **overrides: Any) -> FastAPI:
    """Build the service from settings; nothing connects until the app starts."""
    s = settings or NotificationsSettings(**overrides)
    runtime = ServiceRuntime(s, MIGRATIONS)
    uow = PostgresUnitOfWork(lambda: runtime.pool)

    composer = MailComposer(
        Renderer(support_email=s.support_email),
        ProgrammeNames.load(s.programmes_file),
        load_institutions(s.institutions_file),
    )
    sender = build_mail_sender(s)
    mail = MailDelivery(
        uow,
        sender,
        composer,
        RetrySchedule(s.mail_retry_base_seconds, s.mail_retry_cap_seconds, s.mail_max_attempts),
        mail_from=s.mail_from,
        lease_seconds=s.send_lease_seconds,
        batch_size=s.mail_batch_size,
        # the mailbox writes whatever is handed over together in one batch (mailbox.py): no reason to
        # hand over fewer than a claimed batch; a relay gets `mail_concurrency` connections
        concurrency=s.mail_concurrency if s.smtp_host else s.mail_batch_size,
        observer=runtime.metrics,  # only the four outcome counters (`SendingObserver`), not the runtime
        stored_mail=sender if isinstance(sender, MailboxSender) else None,
    )
    poster = HttpWebhookPoster(s.webhook_timeout_seconds)
    targets = TargetPolicy(allow=s.webhook_allow_list, platform=platform_urls([s.certification_url]))
    webhooks = WebhookDelivery(
        uow,
        poster,
        NatsDeadLetters(lambda: runtime.js, runtime.durable("webhooks")),
        RetrySchedule(s.webhook_retry_base_seconds, s.webhook_retry_cap_seconds, s.webhook_max_attempts),
        lease_seconds=s.webhook_lease_seconds,
        targets=targets,
        observer=runtime.metrics,
    )
    mail_loop = PollLoop("mail", mail.send_due, s.mail_poll_seconds)
    webhook_loop = PollLoop("webhooks", webhooks.deliver_next, s.webhook_poll_seconds)

    usecases = NotificationUseCases(
        uow,
        certification_url=s.certification_url,
        contact_wait_seconds=s.contact_wait_seconds,
        queued=mail_loop.wake,
        deliveries_queued=webhook_loop.wake,
        targets=targets,
        stored_mail=sender if isinstance(sender, MailboxSender) else None,
    )
    expiry_loop = PollLoop("contact-expiry", lambda: usecases.expire_overdue(datetime.now(UTC)), EXPIRY_SWEEP_SECONDS)
    digest_loop = PollLoop(
        "monthly-digest", lambda: usecases.schedule_digests(datetime.now(UTC)), s.digest_poll_seconds
    )

    async def webhook_senders() -> None:
        """`webhook_workers` loops sharing one HTTP client, closed when the task is cancelled."""
        async with poster:
            await asyncio.gather(*(webhook_loop.run() for _ in range(s.webhook_workers)))

    batches = BatchUseCases(
        uow, certification_url=s.certification_url, queued=mail_loop.wake, deliveries_queued=webhook_loop.wake
    )
    handlers = NotificationHandlers(usecases, batches)
    names = sorted({BY_TYPE[t].name for t in MESSAGE_FOR_TYPE} | {spec.name for spec in CONSUMED})
    events = [event_filter(name) for name in names]
    runtime.add_consumer("events", EVENTS_STREAM, events, handlers.on_event, batch_handler=handlers.on_events)
    runtime.add_consumer(
        "contacts", CONTACTS_STREAM, [CONTACT_FILTER], handlers.on_contact, batch_handler=handlers.on_contacts
    )

    async def mail_sender() -> None:
        """The mail loop; the relay connections it keeps are closed when the task ends."""
        try:
            await mail_loop.run()
        finally:
            if isinstance(sender, SmtpSender):
                await sender.close()

    runtime.add_background_task("mail-sender", mail_sender)
    runtime.add_background_task("webhook-senders", webhook_senders)
    runtime.add_background_task("contact-expiry", expiry_loop.run)
    runtime.add_background_task("monthly-digest", digest_loop.run)

    def sending_facts() -> dict[str, Any]:
        return {"mail_sent": mail.sent, "webhooks_delivered": webhooks.delivered, "webhooks_dead": webhooks.dead}

    return build_service(
        runtime,
        title="IIOE notifications service",
        routers=[build_router(usecases)],
        health=[sending_facts],
        state={"usecases": usecases},
    )
