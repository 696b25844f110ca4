"""NATS connection and stream provisioning.

Streams are declared by one owner (`iioe up`, `iioe provision`, the test fixtures);
services only bind to them.
"""

from __future__ import annotations

import asyncio
import os

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from iioe.runtime.logging import get_logger
from iioe.runtime.settings import NatsAuthOptions
from iioe.subjects import (
    ANALYTICS_STREAM,
    ANALYTICS_SUBJECTS,
    CONTACTS_STREAM,
    CONTACTS_SUBJECTS,
    DLQ_STREAM,
    DLQ_SUBJECTS,
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    MAX_EVENT_BYTES,
)

log = get_logger(__name__)
DUPLICATE_WINDOW_SECONDS = 10 * 60
DAY = 24 * 3600.0


def server_list(url: str) -> list[str]:
    """`NATS_URL` may name a cluster: comma-separated URLs (spaces allowed) → a list for the client."""
    return [u.strip() for u in url.split(",") if u.strip()]


async def connect(
    url: str,
    name: str,
    *,
    connect_attempts: int = 30,
    ping_interval: float = 10.0,
    max_outstanding_pings: int = 3,
    auth: NatsAuthOptions | None = None,
) -> NATS:
    """Connect and then reconnect forever (nats-py gives up after 60 attempts by default).

    `url` may list several servers (comma-separated). A server that stops answering is noticed after
    `ping_interval × max_outstanding_pings` seconds (≈ 30 s; nats-py's default is 2 min × 2) and the
    client moves to another one.
    """

    async def on_disconnect() -> None:
        if not nc_ref or not nc_ref[0].is_closed:
            log.warning("nats disconnected", client=name)

    async def on_reconnect() -> None:
        log.info("nats reconnected", client=name)

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", client=name, error=repr(exc))

    nc_ref: list[NATS] = []
    servers = server_list(url)
    for attempt in range(1, connect_attempts + 1):
        try:
            nc: NATS = await nats.connect(
                servers=servers,
                name=name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                connect_timeout=2,
                allow_reconnect=True,
                ping_interval=int(ping_interval) if ping_interval >= 1 else 1,
                max_outstanding_pings=max_outstanding_pings,
                disconnected_cb=on_disconnect,
                reconnected_cb=on_reconnect,
                error_cb=on_error,
                **(auth.connect_kwargs() if auth else {}),
            )
            nc_ref.append(nc)
            return nc
        except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
            if attempt == connect_attempts:
                raise
            log.info("nats not reachable yet, retrying", url=url, attempt=attempt, error=repr(exc))
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def stream_configs(contacts_max_age_days: float = 30) -> list[StreamConfig]:
    """The contract's streams (section 1, 3, 6) plus the analytics snapshot stream."""
    return [
        StreamConfig(
            name=EVENTS_STREAM,
            subjects=[EVENTS_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_msg_size=MAX_EVENT_BYTES,
            discard=DiscardPolicy.OLD,
            description="All IIOE domain events (CloudEvents 1.0); kept for years, no personal data",
        ),
        StreamConfig(
            name=CONTACTS_STREAM,
            subjects=[CONTACTS_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_msg_size=MAX_EVENT_BYTES,
            max_age=contacts_max_age_days * DAY,
            description="Educator contact details (personal data), limited retention",
        ),
        StreamConfig(
            name=DLQ_STREAM,
            subjects=[DLQ_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_msg_size=1024 * 1024,
            allow_msg_ttl=True,  # retention per reason code: each letter carries Nats-TTL (see dlq.py)
            description="Dead letters: original bytes + subject, consumer and reason code in headers",
        ),
        StreamConfig(
            name=ANALYTICS_STREAM,
            subjects=[ANALYTICS_SUBJECTS],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_msgs_per_subject=1,
            allow_direct=True,
            description="Latest analytics snapshot per subject, for late-subscribing dashboards",
        ),
    ]


REPLICAS_ENV = "IIOE_STREAM_REPLICAS"


def cluster_size(nc: NATS | None) -> int:
    """How many servers the connected server says its cluster has (1 when it is not clustered).

    The server's INFO names its cluster and advertises the client URLs of every member (itself
    included); with `no_advertise`, the client's own server list is the best answer left.
    """
    if nc is None:
        return 1
    info: dict[str, object] = getattr(nc, "_server_info", {}) or {}
    if not info.get("cluster"):
        return 1
    urls = info.get("connect_urls")
    advertised = len(set(urls)) if isinstance(urls, list) else 0
    return max(advertised, len(nc.servers), 1)


def stream_replicas(nc: NATS | None, override: int | None = None) -> int:
    """R3 on a cluster of three or more servers, else R1; `IIOE_STREAM_REPLICAS` (or `override`) decides."""
    if override is None and os.environ.get(REPLICAS_ENV, "").strip():
        override = int(os.environ[REPLICAS_ENV])
    if override is not None:
        if not 1 <= override <= 5:
            raise ValueError(f"{REPLICAS_ENV} must be between 1 and 5, not {override}")
        return override
    return 3 if cluster_size(nc) >= 3 else 1


async def provision_streams(
    js: JetStreamContext,
    contacts_max_age_days: float = 30,
    *,
    replicas: int | None = None,
    nc: NATS | None = None,
) -> list[str]:
    """Create or update every stream; idempotent.

    Replicas: `replicas`, else `IIOE_STREAM_REPLICAS`, else 3 when the server is part of a cluster of
    three or more, else 1. Without an explicit choice an existing stream is never scaled down (an
    operator may have raised it); an explicit one is applied as given.
    """
    nc = nc if nc is not None else getattr(js, "_nc", None)
    explicit = replicas is not None or bool(os.environ.get(REPLICAS_ENV, "").strip())
    wanted = stream_replicas(nc, replicas)
    names = []
    for config in stream_configs(contacts_max_age_days):
        assert config.name is not None
        config.num_replicas = wanted
        try:
            existing = await js.stream_info(config.name)
            if not explicit:
                config.num_replicas = max(existing.config.num_replicas or 1, wanted)
            await js.update_stream(config)
            log.debug("stream updated", stream=config.name, replicas=config.num_replicas)
        except NotFoundError:
            await js.add_stream(config)
            log.info("stream created", stream=config.name, replicas=config.num_replicas)
        names.append(config.name)
    return names
