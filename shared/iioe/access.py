"""Who may do what on the bus (contract §8): the least-privilege policy, as data.

One place derives every NATS permission from the contract's subjects, so that the embedded
server, the shipped deploy configs and the tests that prove the denials all agree. Nothing
here talks to NATS: `iioe_tools`/the CLI render these into a nats-server configuration.

Principals:
* a **service** user per service: exactly the subjects it consumes and emits, its own inbox
  prefix, and JetStream API access to its own streams and durable consumers only;
* a **partner** user per institution: the commands and the partner event types of that
  institution only, replies on its own inbox prefix;
* the **dashboard** user: subscribe to `iioe.analytics.>` only;
* the **operator** user: everything (the CLI: provisioning, dead letters, rebuild, tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from iioe.commands import CHANGE_ROLE
from iioe.events import (
    CERTIFICATE_ISSUED,
    CERTIFICATE_REINSTATED,
    CERTIFICATE_REVOKED,
    CERTIFICATE_SUSPENDED,
    COURSE_COMPLETED,
    CREDIT_RECOGNIZED,
    CREDIT_TRANSFER_DECIDED,
    CREDIT_TRANSFER_REQUESTED,
    EDUCATOR_CONTACT,
    EDUCATOR_ERASED,
    EDUCATOR_REGISTERED,
    EDUCATOR_ROLE_CHANGED,
    PARTNER_EVENT_TYPES,
    PORTFOLIO_ENTRY_ADDED,
    PRACTICE_INTEGRATION_REPORTED,
    TRAINEE_ATTENDED,
    TRAINING_SESSION_HELD,
    EventSpec,
)
from iioe.subjects import (
    ANALYTICS_STREAM,
    ANALYTICS_SUBJECTS,
    CONTACTS_STREAM,
    DLQ_STREAM,
    DLQ_SUBJECTS,
    EVENTS_STREAM,
    REGISTER_EDUCATOR,
    check_institution,
    command_filter,
    institution_commands,
)

PARTNER_EVENT_NAMES: tuple[str, ...] = tuple(spec.name for spec in PARTNER_EVENT_TYPES)
"""Event types a partner may publish for its own institution (contract §8, §9)."""

TOKENS_BUCKET = "IIOE_TOKENS"
"""JetStream key-value bucket of HTTP bearer-token grants (hashes only), written by the operator CLI."""

SERVICE_NAMES = ("registration", "certification", "analytics", "notifications")

_SERVICE_EMITS: dict[str, tuple[EventSpec, ...]] = {
    # registration also takes cascade and portfolio records entered over HTTP by institution staff,
    # and CSV imports of course completions (POST /v1/completions/import)
    "registration": (
        EDUCATOR_REGISTERED,
        EDUCATOR_ROLE_CHANGED,
        EDUCATOR_ERASED,
        EDUCATOR_CONTACT,
        TRAINING_SESSION_HELD,
        TRAINEE_ATTENDED,
        PORTFOLIO_ENTRY_ADDED,
        PRACTICE_INTEGRATION_REPORTED,
        COURSE_COMPLETED,
    ),
    "certification": (
        CERTIFICATE_ISSUED,
        CERTIFICATE_REVOKED,
        CERTIFICATE_SUSPENDED,
        CERTIFICATE_REINSTATED,
        CREDIT_RECOGNIZED,
        CREDIT_TRANSFER_REQUESTED,
        CREDIT_TRANSFER_DECIDED,
    ),
    "analytics": (),
    "notifications": (),
}
_SERVICE_ALSO_PUBLISHES: dict[str, tuple[str, ...]] = {
    "registration": (),
    "certification": (DLQ_SUBJECTS,),
    "analytics": (ANALYTICS_SUBJECTS, DLQ_SUBJECTS),
    "notifications": (DLQ_SUBJECTS,),
}

SERVICE_DURABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "registration": (),
    "certification": ((EVENTS_STREAM, "progress"),),
    "analytics": ((EVENTS_STREAM, "projections"),),
    "notifications": ((EVENTS_STREAM, "events"), (CONTACTS_STREAM, "contacts"), (EVENTS_STREAM, "webhooks")),
}
"""(stream, consumer name) of each service's durable consumers; the durable is `<service>-<name>`."""
RESTORE_CONSUMER = "certification-restore"
"""The consumer certification reads IIOE_EVENTS with when it rebuilds an empty database (created, read, deleted)."""

_SERVICE_SUBSCRIBES: dict[str, tuple[str, ...]] = {
    "registration": (command_filter(REGISTER_EDUCATOR), command_filter(CHANGE_ROLE)),
    "certification": (),
    "analytics": (ANALYTICS_SUBJECTS,),  # its own snapshots, fanned out to SSE clients
    "notifications": (),
}


@dataclass(frozen=True)
class Permissions:
    """A NATS user's permissions: allow-lists (deny by default), and its reply inbox prefix."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    inbox_prefix: str | None = None
    allow_responses: bool = False
    """May publish to the reply subject of a request it received (once), whatever that subject is."""
    deny_subscribe: tuple[str, ...] = field(default=())


def inbox_prefix(user: str) -> str:
    """`_INBOX_<user>`: each user's replies arrive on subjects no other user may subscribe to."""
    return f"_INBOX_{user}"


def _jetstream_api(stream: str, durable: str) -> tuple[str, ...]:
    """The JetStream API a pull consumer of one durable needs, and nothing that administers streams."""
    return (
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    )


def _token_reader() -> tuple[str, ...]:
    """Read (watch and get) the HTTP token grants bucket."""
    kv_stream = f"KV_{TOKENS_BUCKET}"
    return (
        f"$JS.API.STREAM.INFO.{kv_stream}",
        f"$JS.API.CONSUMER.CREATE.{kv_stream}",
        f"$JS.API.CONSUMER.CREATE.{kv_stream}.>",
        f"$JS.API.CONSUMER.DELETE.{kv_stream}.>",
        f"$JS.API.CONSUMER.INFO.{kv_stream}.>",
        f"$JS.API.DIRECT.GET.{kv_stream}.>",
        f"$JS.API.STREAM.MSG.GET.{kv_stream}",
        f"$JS.FC.{kv_stream}.>",
    )


def service_user(service: str) -> str:
    return f"svc-{service}"


def service_permissions(service: str, consumer_prefix: str = "") -> Permissions:
    """Exactly what one service needs; `consumer_prefix` as in `ServiceSettings.consumer_prefix`."""
    if service not in _SERVICE_EMITS:
        raise ValueError(f"unknown service {service!r}")
    publish: list[str] = [spec.subject_filter() for spec in _SERVICE_EMITS[service]]
    publish += _SERVICE_ALSO_PUBLISHES[service]
    publish += ["$JS.API.INFO", f"$JS.API.STREAM.INFO.{EVENTS_STREAM}"]
    for stream, name in SERVICE_DURABLES[service]:
        publish += _jetstream_api(stream, f"{consumer_prefix}{service}-{name}")
    if service == "certification":  # rebuilding an empty database from the log (services/certification/restore.py)
        restore = f"{consumer_prefix}{RESTORE_CONSUMER}"
        publish += [*_jetstream_api(EVENTS_STREAM, restore), f"$JS.API.CONSUMER.DELETE.{EVENTS_STREAM}.{restore}"]
    if DLQ_SUBJECTS in _SERVICE_ALSO_PUBLISHES[service]:
        publish.append(f"$JS.API.STREAM.INFO.{DLQ_STREAM}")
    if service == "analytics":
        publish += [f"$JS.API.STREAM.INFO.{ANALYTICS_STREAM}", f"$JS.API.DIRECT.GET.{ANALYTICS_STREAM}.>"]
    publish += _token_reader()
    user = service_user(service)
    prefix = inbox_prefix(user)
    return Permissions(
        publish=tuple(publish),
        subscribe=(*_SERVICE_SUBSCRIBES[service], f"{prefix}.>"),
        inbox_prefix=prefix,
        allow_responses=service == "registration",
    )


def partner_user(institution: str) -> str:
    return f"partner-{check_institution(institution)}"


def partner_permissions(institution: str) -> Permissions:
    """A partner system of one institution (contract §8): its own commands and partner event types."""
    check_institution(institution)
    prefix = inbox_prefix(partner_user(institution))
    events = [spec.subject(institution) for spec in PARTNER_EVENT_TYPES]
    publish = (institution_commands(institution), *events)
    return Permissions(publish=publish, subscribe=(f"{prefix}.>",), inbox_prefix=prefix)


DASHBOARD_USER = "dashboard"
OPERATOR_USER = "operator"


def dashboard_permissions() -> Permissions:
    """Dashboards subscribe to analytics snapshots only (and may read the latest one directly)."""
    prefix = inbox_prefix(DASHBOARD_USER)
    return Permissions(
        publish=(f"$JS.API.DIRECT.GET.{ANALYTICS_STREAM}.>",),
        subscribe=(ANALYTICS_SUBJECTS, f"{prefix}.>"),
        inbox_prefix=prefix,
    )


def operator_permissions() -> Permissions:
    """The operator CLI administers streams, dead letters, rebuilds and tokens: everything."""
    return Permissions(publish=(">",), subscribe=(">",))
