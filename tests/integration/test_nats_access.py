"""The bus is closed (contract §8): a real nats-server with the configuration `iioe up` generates.

Every overreach is denied while the same user's legitimate traffic is acknowledged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from iioe.access import DASHBOARD_USER, OPERATOR_USER, partner_user, service_user
from iioe.runtime.nats import provision_streams
from iioe.subjects import CONTACTS_STREAM, EVENTS_STREAM
from iioe_tools.embedded import EmbeddedNats, free_port
from iioe_tools.nats_auth import NatsAuth
from tests.support.helpers import eventually as eventually_async

pytestmark = pytest.mark.integration


async def eventually(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    async def probe() -> bool:
        return check()

    await eventually_async(probe, timeout=timeout, interval=0.02, what=what)


@dataclass
class Client:
    nc: NATS
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e]


@dataclass
class Bus:
    auth: NatsAuth
    url: str
    clients: list[Client] = field(default_factory=list)

    async def connect(self, user: str) -> Client:
        creds = self.auth.credentials(user)
        client = Client(nc=NATS())

        async def on_error(exc: Exception) -> None:
            client.errors.append(str(exc))

        await client.nc.connect(
            self.url,
            user=creds.user,
            password=creds.password,
            inbox_prefix=creds.inbox_prefix or "_INBOX",
            error_cb=on_error,
            allow_reconnect=False,
        )
        self.clients.append(client)
        return client


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    port = free_port()
    auth = NatsAuth(tmp_path / "nats", host="127.0.0.1", port=port)
    auth.ensure_platform_users()
    auth.add_partner("must")
    auth.add_partner("num")
    server = EmbeddedNats(tmp_path / "nats", port, config=auth.config_path).start()
    bus = Bus(auth, server.url)
    try:
        operator = await bus.connect(OPERATOR_USER)
        await provision_streams(operator.nc.jetstream())
        yield bus
    finally:
        for client in bus.clients:
            if not client.nc.is_closed:
                await client.nc.close()
        server.stop()


def completion(institution: str, event_id: str) -> bytes:
    return json.dumps({"id": event_id, "institution": institution}).encode()


async def denied_publish(client: Client, subject: str) -> None:
    """A JetStream publish the server refuses: no PubAck, and the client is told why."""
    before = len(client.violations())
    with pytest.raises((nats.errors.TimeoutError, nats.errors.NoRespondersError)):
        await client.nc.jetstream().publish(subject, b"{}", timeout=0.5)
    await eventually(lambda: len(client.violations()) > before, timeout=5, what=f"violation for {subject}")
    assert subject.lower() in client.violations()[-1].lower()


async def denied_subscribe(client: Client, subject: str) -> None:
    before = len(client.violations())
    await client.nc.subscribe(subject)
    await client.nc.flush()
    await eventually(lambda: len(client.violations()) > before, timeout=5, what=f"violation for sub {subject}")


async def test_anonymous_and_wrong_password_are_refused(bus: Bus) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(bus.url, allow_reconnect=False, max_reconnect_attempts=0)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(bus.url, user=partner_user("must"), password="guess", allow_reconnect=False)


async def test_partner_publishes_its_own_completions_and_nothing_else(bus: Bus) -> None:
    partner = await bus.connect(partner_user("must"))
    js = partner.nc.jetstream()

    ack = await js.publish("iioe.events.must.course_completed.v1", b"{}", headers={"Nats-Msg-Id": "evt-1"})
    assert ack.stream == EVENTS_STREAM
    for name in ("training_session_held", "trainee_attended", "course_evaluated", "portfolio_entry_added"):
        assert (await js.publish(f"iioe.events.must.{name}.v1", b"{}")).stream == EVENTS_STREAM

    await denied_publish(partner, "iioe.events.num.course_completed.v1")  # another institution
    await denied_publish(partner, "iioe.events.must.certificate_issued.v1")  # a platform event type
    await denied_publish(partner, "iioe.events.must.educator_registered.v1")
    await denied_publish(partner, "iioe.contacts.must.educator_contact.v1")
    await denied_subscribe(partner, "iioe.contacts.>")
    await denied_subscribe(partner, "iioe.events.>")
    await denied_subscribe(partner, "_INBOX_partner-num.>")  # another partner's replies
    with pytest.raises(nats.errors.TimeoutError):
        await js.delete_stream(EVENTS_STREAM)
    assert any("$js.api.stream.delete" in v.lower() for v in partner.violations())

    operator = await bus.connect(OPERATOR_USER)
    info = await operator.nc.jetstream().stream_info(EVENTS_STREAM)
    assert info.state.messages == 5  # exactly the partner's five legitimate events


async def test_partner_commands_reach_registration_for_its_institution_only(bus: Bus) -> None:
    registration = await bus.connect(service_user("registration"))

    async def answer(msg: Msg) -> None:
        await msg.respond(json.dumps({"subject": msg.subject}).encode())

    await registration.nc.subscribe("iioe.commands.*.register_educator", queue="registration", cb=answer)
    await registration.nc.flush()
    partner = await bus.connect(partner_user("must"))

    reply = await partner.nc.request("iioe.commands.must.register_educator", b"{}", timeout=2)
    assert json.loads(reply.data) == {"subject": "iioe.commands.must.register_educator"}
    assert reply.subject.startswith("_INBOX_partner-must.")
    with pytest.raises(nats.errors.TimeoutError):
        await partner.nc.request("iioe.commands.num.register_educator", b"{}", timeout=0.5)
    assert any("iioe.commands.num.register_educator" in v for v in partner.violations())


async def test_services_publish_only_their_own_event_types(bus: Bus) -> None:
    registration = await bus.connect(service_user("registration"))
    js = registration.nc.jetstream()
    assert (await js.publish("iioe.events.must.educator_registered.v1", b"{}")).stream == EVENTS_STREAM
    assert (await js.publish("iioe.contacts.must.educator_contact.v1", b"{}")).stream == CONTACTS_STREAM
    # completions imported over HTTP (POST /v1/completions/import); other partner types stay the partners'
    assert (await js.publish("iioe.events.must.course_completed.v1", b"{}")).stream == EVENTS_STREAM
    await denied_publish(registration, "iioe.events.must.certificate_issued.v1")
    await denied_publish(registration, "iioe.events.must.course_evaluated.v1")

    certification = await bus.connect(service_user("certification"))
    cjs = certification.nc.jetstream()
    assert (await cjs.publish("iioe.events.must.certificate_issued.v1", b"{}")).stream == EVENTS_STREAM
    await denied_publish(certification, "iioe.events.must.educator_registered.v1")
    await denied_subscribe(certification, "iioe.contacts.>")


async def test_analytics_never_sees_contacts_or_other_inboxes(bus: Bus) -> None:
    analytics = await bus.connect(service_user("analytics"))
    for subject in ("iioe.contacts.>", "_INBOX.>", "_INBOX_svc-notifications.>", "_INBOX_partner-must.>", ">"):
        await denied_subscribe(analytics, subject)
    js = analytics.nc.jetstream()
    with pytest.raises(nats.errors.TimeoutError):
        await js.pull_subscribe_bind(durable="notifications-contacts", stream=CONTACTS_STREAM)
        await js.consumer_info(CONTACTS_STREAM, "notifications-contacts", timeout=0.5)


async def test_each_service_consumes_through_its_own_durables_only(bus: Bus) -> None:
    """The durables of `iioe.access.SERVICE_DURABLES` work for their service and no other."""
    from nats.js.api import AckPolicy, ConsumerConfig

    operator = await bus.connect(OPERATOR_USER)
    await operator.nc.jetstream().publish("iioe.events.must.course_completed.v1", b"{}")
    certification = await bus.connect(service_user("certification"))
    js = certification.nc.jetstream()
    config = ConsumerConfig(durable_name="certification-progress", ack_policy=AckPolicy.EXPLICIT)
    await js.add_consumer(EVENTS_STREAM, config)
    sub = await js.pull_subscribe_bind(durable="certification-progress", stream=EVENTS_STREAM)
    msgs = await sub.fetch(1, timeout=2)
    await msgs[0].ack_sync()

    with pytest.raises(nats.errors.TimeoutError):
        other = ConsumerConfig(durable_name="analytics-projections", ack_policy=AckPolicy.EXPLICIT)
        await js.add_consumer(EVENTS_STREAM, other, timeout=0.5)


async def test_dashboard_only_subscribes_to_analytics(bus: Bus) -> None:
    dashboard = await bus.connect(DASHBOARD_USER)
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_msg(msg: Msg) -> None:
        await got.put(msg.data)

    await dashboard.nc.subscribe("iioe.analytics.>", cb=on_msg)
    await dashboard.nc.flush()
    analytics = await bus.connect(service_user("analytics"))
    await analytics.nc.jetstream().publish("iioe.analytics.summary", b'{"educators_registered": 1}')
    assert await asyncio.wait_for(got.get(), 5) == b'{"educators_registered": 1}'
    await denied_subscribe(dashboard, "iioe.events.>")
    await denied_publish(dashboard, "iioe.analytics.summary")


async def test_revoked_partner_is_disconnected_and_cannot_return(bus: Bus) -> None:
    partner = await bus.connect(partner_user("num"))
    assert partner.nc.is_connected
    assert bus.auth.revoke_partner("num")
    await eventually(lambda: not partner.nc.is_connected, timeout=10, what="revoked partner disconnected")
    with pytest.raises(KeyError):
        bus.auth.credentials(partner_user("num"))


async def test_certification_reads_the_log_through_its_restore_consumer_only(bus: Bus) -> None:
    """Rebuilding an empty certification database reads IIOE_EVENTS through `RESTORE_CONSUMER` (created,
    read, deleted) — with the service's own NATS user, which may create no other ephemeral consumer."""
    from nats.js.api import AckPolicy, ConsumerConfig
    from nats.js.errors import NotFoundError

    from iioe.access import RESTORE_CONSUMER
    from services.certification.restore import stream_reader

    operator = await bus.connect(OPERATOR_USER)
    await operator.nc.jetstream().publish("iioe.events.must.course_completed.v1", b"{}")  # unparseable: skipped
    certification = await bus.connect(service_user("certification"))
    js = certification.nc.jetstream()
    read = stream_reader(js)
    for _ in range(2):  # each pass reads from the start again
        assert [e async for e in read()] == []
    with pytest.raises(NotFoundError):
        await js.consumer_info(EVENTS_STREAM, RESTORE_CONSUMER, timeout=2)  # deleted after each pass
    with pytest.raises(nats.errors.TimeoutError):
        other = ConsumerConfig(name="someone-else", ack_policy=AckPolicy.NONE)
        await js.add_consumer(EVENTS_STREAM, other, timeout=0.5)
