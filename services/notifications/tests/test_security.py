"""Security rules (#9) on the in-memory unit of work: webhook targets, erasure, no addresses in logs."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
import structlog

from iioe.events import CERTIFICATE_ISSUED, EDUCATOR_REGISTERED
from services.notifications.domain import ERASED, NotificationStatus, scrub_addresses
from services.notifications.ports import DeliveryError
from services.notifications.targets import FORBIDDEN, UNRESOLVABLE, TargetPolicy, TargetRefused, forbidden_range
from services.notifications.tests.fakes import FakeDns
from services.notifications.tests.test_usecases import PUBLIC, T0, Platform, hook, issued, registered
from services.notifications.usecases import RegisterWebhook

S = NotificationStatus

# -- webhook targets --------------------------------------------------------------------------

FORBIDDEN_ADDRESSES = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "169.254.169.254",  # cloud metadata
    "fe80::1",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.10",
    "fc00::1",
    "fd12:3456::1",
    "100.64.0.1",
    "100.127.255.254",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.1",
]


@pytest.mark.parametrize("address", FORBIDDEN_ADDRESSES)
async def test_private_loopback_link_local_and_multicast_targets_are_refused(address: str) -> None:
    policy = TargetPolicy(resolver=FakeDns(default=[address]))
    literal = f"[{address}]" if ":" in address else address
    for url in (f"https://{literal}/hook", "https://partner.example/hook"):
        with pytest.raises(TargetRefused) as info:
            await policy.resolve(url)
        assert info.value.code == FORBIDDEN


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "100.128.0.1"])
async def test_public_targets_are_accepted_and_pinned_to_the_checked_address(address: str) -> None:
    policy = TargetPolicy(resolver=FakeDns(default=[address]))
    target = await policy.resolve("https://partner.example:8443/hook")
    assert (target.host, target.port, target.address, target.scheme) == ("partner.example", 8443, address, "https")
    assert forbidden_range(ipaddress.ip_address(address)) is None


async def test_a_name_with_one_forbidden_address_among_public_ones_is_refused() -> None:
    policy = TargetPolicy(resolver=FakeDns(default=["93.184.216.34", "10.0.0.5"]))
    with pytest.raises(TargetRefused, match="private address"):
        await policy.resolve("https://partner.example/hook")


async def test_the_platforms_own_services_are_refused_even_on_public_addresses() -> None:
    policy = TargetPolicy(
        platform=["https://cert.iioe.example", "http://registration.iioe.example:8001"],
        resolver=FakeDns(default=PUBLIC),
    )
    for url in ("https://cert.iioe.example/v1/certificates/x", "http://registration.iioe.example:8001/v1/educators"):
        with pytest.raises(TargetRefused, match="platform's own services"):
            await policy.resolve(url)
    assert (await policy.resolve("https://cert.iioe.example:9443/hook")).port == 9443  # another port is not it


async def test_another_name_for_a_platform_service_address_is_refused() -> None:
    dns = FakeDns(default=PUBLIC, cert_iioe_example=["93.184.216.50"], alias_example=["93.184.216.50"])
    policy = TargetPolicy(platform=["https://cert.iioe.example"], resolver=dns)
    with pytest.raises(TargetRefused, match="platform's own services"):
        await policy.resolve("https://alias.example/hook")
    assert (await policy.resolve("https://alias.example:8443/hook")).address == "93.184.216.50"


async def test_the_operator_allow_list_admits_named_hosts_and_ports_only() -> None:
    dns = FakeDns(default=["127.0.0.1"], hooks_example_org=["10.0.0.7"])
    policy = TargetPolicy(
        allow=["127.0.0.1:9000", "hooks.example.org"], platform=["http://127.0.0.1:9000"], resolver=dns
    )
    assert (await policy.resolve("http://127.0.0.1:9000/hook")).address == "127.0.0.1"
    assert (await policy.resolve("https://hooks.example.org/in")).address == "10.0.0.7"
    assert (await policy.resolve("http://localhost:9000/hook")).address == "127.0.0.1"  # the same address:port
    with pytest.raises(TargetRefused):
        await policy.resolve("http://127.0.0.1:9001/hook")  # another port of the allowed host
    with pytest.raises(TargetRefused):
        await policy.resolve("http://localhost:9001/hook")


async def test_names_that_do_not_resolve_and_other_schemes_are_refused_with_their_own_codes() -> None:
    policy = TargetPolicy(resolver=FakeDns())
    with pytest.raises(TargetRefused) as info:
        await policy.resolve("https://nowhere.example/hook")
    assert info.value.code == UNRESOLVABLE
    for url in ("ftp://partner.example/x", "file:///etc/passwd", "https:///nohost"):
        with pytest.raises(TargetRefused) as info:
            await policy.resolve(url)
        assert info.value.code == FORBIDDEN


async def test_registering_a_forbidden_target_is_refused_and_stores_nothing() -> None:
    p = Platform()
    p.dns.names["internal.example"] = ["192.168.0.4"]
    for url in ("http://169.254.169.254/latest/meta-data", "https://internal.example/hook"):
        with pytest.raises(TargetRefused) as info:
            await p.usecases.register_webhook(
                RegisterWebhook("wh-x", url, "must", [CERTIFICATE_ISSUED.type], "whsec_x")
            )
        assert info.value.code == FORBIDDEN
    assert p.uow.state.webhooks == {}


async def test_a_target_that_now_resolves_to_a_forbidden_address_fails_without_sending() -> None:
    """DNS rebinding: public at registration, internal at delivery → given up at once, nothing posted."""
    p = Platform()
    await hook(p, "wh-rebind", "must", CERTIFICATE_ISSUED.type)
    p.dns.names["wh-rebind.example"] = ["127.0.0.1"]
    await p.usecases.record_event(issued("edu-s1"))
    [delivery_id] = p.uow.state.deliveries

    assert await p.webhooks.deliver_next() == 1
    row = p.uow.delivery(delivery_id)
    assert p.poster.calls == [] and row.status == "dead" and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith(f"{FORBIDDEN}:")
    assert p.dead_letters.letters == [(delivery_id, row.last_error)]


async def test_a_delivery_posts_to_the_address_checked_at_delivery_time() -> None:
    p = Platform()
    await hook(p, "wh-moved", "must", CERTIFICATE_ISSUED.type)
    p.dns.names["wh-moved.example"] = ["93.184.216.99"]  # moved to another public address since registration
    await p.usecases.record_event(issued("edu-s2"))
    assert await p.webhooks.deliver_next() == 1
    assert p.poster.addresses == ["93.184.216.99"] and p.webhooks.delivered == 1


async def test_a_target_that_does_not_resolve_for_now_is_retried() -> None:
    p = Platform()
    await hook(p, "wh-dns", "must", CERTIFICATE_ISSUED.type)
    p.dns.default = None
    await p.usecases.record_event(issued("edu-s3"))
    [delivery_id] = p.uow.state.deliveries
    assert await p.webhooks.deliver_next() == 1
    row = p.uow.delivery(delivery_id)
    assert row.status == "pending" and (row.last_error or "").startswith(UNRESOLVABLE) and p.poster.calls == []
    p.dns.default = PUBLIC
    p.clock.advance(5)
    assert await p.webhooks.deliver_next() == 1 and p.uow.delivery(delivery_id).status == "delivered"


# -- erasure ----------------------------------------------------------------------------------


async def test_erasure_forgets_the_contact_and_stops_every_unsent_mail() -> None:
    p = Platform()
    await p.contact("edu-e1", "mn")
    sent = await p.usecases.record_event(registered("edu-e1"))
    await p.mail.send_due()
    pending = await p.usecases.record_event(issued("edu-e1"))
    assert p.status(pending.notification_id) is S.PENDING

    assert await p.usecases.erase_educator("edu-e1", T0) == 1
    assert p.uow.state.contacts == {}
    stopped = p.uow.notification(pending.notification_id)
    assert (stopped.status, stopped.recipient, stopped.last_error) == (S.EXPIRED, None, ERASED)
    history = p.uow.notification(sent.notification_id)
    assert (history.status, history.recipient) == (S.SENT, None)  # the record stays, the address goes
    assert await p.mail.send_due() == 0 and len(p.sender.sent) == 1

    assert await p.usecases.erase_educator("edu-e1", T0) == 0  # idempotent (a redelivered erasure)


async def test_nothing_reaches_an_erased_person_later() -> None:
    """A replayed contact or event after the erasure brings no data back and sends nothing."""
    p = Platform()
    waiting = await p.usecases.record_event(registered("edu-e2"))
    assert await p.usecases.erase_educator("edu-e2", T0) == 1
    assert p.status(waiting.notification_id) is S.EXPIRED

    assert await p.contact("edu-e2", at=T0 + timedelta(days=1)) == 0
    assert p.uow.state.contacts == {}
    late = await p.usecases.record_event(registered("edu-e2"))
    assert not late.queued and late.notification_id not in p.uow.state.notifications
    assert await p.mail.send_due() == 0 and p.sender.sent == []


async def test_erasure_stops_a_mail_whose_send_was_claimed() -> None:
    """A worker holding the row cannot mark it sent afterwards: its claim token was dropped."""
    p = Platform()
    await p.contact("edu-e3")
    recorded = await p.usecases.record_event(registered("edu-e3"))
    async with p.uow.transaction() as repo:
        [claimed] = await repo.mail.claim(10, 60.0)
    await p.usecases.erase_educator("edu-e3", T0)
    async with p.uow.transaction() as repo:
        assert not await repo.mail.finish(claimed, claimed.notification.sent("x"))
    assert p.status(recorded.notification_id) is S.EXPIRED


async def test_erasure_drops_the_persons_attendance_and_progress() -> None:
    p = Platform()
    async with p.uow.transaction() as repo:
        await repo.cascade.add_attendance("sess-1", "edu-e4", "must", "ev-1")
        await repo.cascade.add_completion("edu-e4", "genai-fundamentals")
        await repo.cascade.add_certified("edu-e4", "cert-1")
    await p.usecases.erase_educator("edu-e4", T0)
    assert not p.uow.state.attendances and not p.uow.state.completions and not p.uow.state.certified
    assert "edu-e4" in p.uow.state.erasures


# -- no addresses in logs ---------------------------------------------------------------------


def test_addresses_are_scrubbed_from_errors() -> None:
    text = "550 5.1.1 <sarnai.b@must.edu.mn>: Recipient address rejected; also x.y+z@num.edu.mn"
    assert "@" not in scrub_addresses(text) and "Recipient address rejected" in scrub_addresses(text)


async def test_registration_to_mail_flow_logs_no_address() -> None:
    """Contact, registration, a failed then a refused send, a sent mail and an erasure: never an '@' in a log."""
    refused = DeliveryError("SMTP recipients refused: 550 <dorj.bat@must.edu.mn> unknown", permanent=True)
    p = Platform(DeliveryError("451 try later for dorj.bat@must.edu.mn", permanent=False), refused)
    with structlog.testing.capture_logs() as logs:
        await p.contact("edu-l1", "mn", email="dorj.bat@must.edu.mn")
        await p.contact("edu-l2", "en", email="sarnai@num.edu.mn")
        for educator in ("edu-l1", "edu-l2"):
            await p.usecases.record_event(registered(educator))
        while await p.mail.send_due():
            p.clock.advance(10)
        await p.usecases.erase_educator("edu-l2", T0)
    assert p.sender.to("sarnai@num.edu.mn") or p.sender.to("dorj.bat@must.edu.mn")
    assert logs, "the flow logged nothing: the capture is not working"
    for entry in logs:
        assert "@" not in repr(entry), entry
    failed = [r.item for r in p.uow.state.notifications.values() if r.item.status is S.FAILED]
    assert all("@" not in (n.last_error or "") for n in failed)
    assert EDUCATOR_REGISTERED.type  # the flow used the real event types
