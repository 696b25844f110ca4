"""`iioe status`: the platform at a glance — streams, consumer lag, dead letters, services, outboxes.

NATS is read as the operator (`operator_connection()`: `NATS_URL` and its credentials, else the
embedded server of `IIOE_DATA_DIR`); each service at the URL `iioe up` gives it
(`IIOE_<SVC>_URL`, else `http://127.0.0.1:<IIOE_<SVC>_HTTP_PORT or 8001–8004>`): `/readyz` for its
health and outbox backlog, `/metrics` for the age of its oldest unpublished outbox row.

`--json` prints one JSON object (for scripts); `--watch [SECONDS]` redraws until Ctrl-C. The exit
status is 0 when NATS answers and every service is ready, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from iioe.runtime.logging import configure_logging
from iioe.subjects import DLQ_STREAM, DLQ_SUBJECTS
from iioe_tools.cli.up import SERVICES
from iioe_tools.operator import operator_connection

Status = dict[str, Any]


def service_urls() -> dict[str, str]:
    """The HTTP base URL of each service, as `iioe up` publishes them to its children."""
    return {
        svc.name: os.environ.get(f"IIOE_{svc.name.upper()}_URL", f"http://127.0.0.1:{svc.port()}").rstrip("/")
        for svc in SERVICES
    }


async def nats_status(nc: NATS) -> Status:
    """Streams, durable consumers and dead letters by reason, as JetStream reports them."""
    js = nc.jetstream()
    streams: list[Status] = []
    consumers: list[Status] = []
    for info in await js.streams_info():
        name = info.config.name or ""
        streams.append(
            {
                "name": name,
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "replicas": info.config.num_replicas or 1,
                "consumers": info.state.consumer_count,
            }
        )
        for consumer in await js.consumers_info(name):
            consumers.append(
                {
                    "name": consumer.name,
                    "stream": name,
                    "num_pending": consumer.num_pending or 0,
                    "num_ack_pending": consumer.num_ack_pending or 0,
                    "num_redelivered": consumer.num_redelivered or 0,
                }
            )
    streams.sort(key=lambda s: s["name"])
    consumers.sort(key=lambda c: (c["stream"], c["name"]))
    return {"streams": streams, "consumers": consumers, "dead_letters": await dead_letters(nc)}


async def dead_letters(nc: NATS) -> Status:
    """Counts by reason and by consumer, from the subjects `iioe.dlq.<consumer>.<reason>`."""
    by_reason: dict[str, int] = defaultdict(int)
    by_consumer: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    info = await nc.jetstream().stream_info(DLQ_STREAM, subjects_filter=DLQ_SUBJECTS)
    for subject, count in (info.state.subjects or {}).items():
        parts = subject.split(".", 3)
        if len(parts) != 4:
            continue
        _, _, consumer, reason = parts
        by_reason[reason] += count
        by_consumer[consumer][reason] += count
    return {
        "total": info.state.messages,
        "by_reason": dict(sorted(by_reason.items())),
        "by_consumer": {c: dict(sorted(r.items())) for c, r in sorted(by_consumer.items())},
    }


async def service_status(client: httpx.AsyncClient, name: str, url: str) -> Status:
    """Health (from `/readyz`) and outbox backlog of one service; `unreachable` when it does not answer."""
    out: Status = {"name": name, "url": url}
    try:
        response = await client.get(f"{url}/readyz")
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return {**out, "status": "unreachable", "error": f"{type(exc).__name__}: {exc}"}
    out.update(
        status=body.get("status", "ok" if response.status_code == 200 else "degraded"),
        http_status=response.status_code,
        database=body.get("database"),
        nats=body.get("nats"),
        outbox_pending=body.get("outbox_pending"),
        stopped_tasks=body.get("stopped_tasks", []),
    )
    with contextlib.suppress(httpx.HTTPError, ValueError):
        metrics = await client.get(f"{url}/metrics")
        if metrics.status_code == 200:
            for family in text_string_to_metric_families(metrics.text):
                if family.name == "iioe_outbox_oldest_pending_age_seconds" and family.samples:
                    out["outbox_oldest_pending_age_seconds"] = family.samples[0].value
    return out


async def collect(nc: NATS | None, urls: dict[str, str], *, timeout: float = 3.0) -> Status:
    """The whole picture as one JSON-ready object."""
    status: Status = {"time": datetime.now(UTC).isoformat(timespec="seconds")}
    async with httpx.AsyncClient(timeout=timeout) as client:
        services = asyncio.gather(*(service_status(client, name, url) for name, url in urls.items()))
        if nc is None:
            status["nats"] = {"status": "unreachable"}
        else:
            try:
                status.update(await asyncio.wait_for(nats_status(nc), timeout))
                status["nats"] = {"status": "ok", "url": nc.connected_url.geturl() if nc.connected_url else None}
            except Exception as exc:
                status["nats"] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
        status["services"] = await services
    status.setdefault("streams", [])
    status.setdefault("consumers", [])
    status.setdefault("dead_letters", {"total": None, "by_reason": {}, "by_consumer": {}})
    status["ok"] = status["nats"]["status"] == "ok" and all(s["status"] == "ok" for s in status["services"])
    return status


# --- rendering ------------------------------------------------------------------------------------


def _size(num: int) -> str:
    value = float(num)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{num} B"


def _health(status: str) -> Text:
    return Text(status, style={"ok": "green", "degraded": "yellow"}.get(status, "red"))


def render(status: Status) -> Group:
    """Rich tables for one snapshot."""
    nats_state = status["nats"]
    header = Text.assemble(
        ("IIOE platform ", "bold"), status["time"], "  NATS: ", _health(nats_state["status"]),
        f" {nats_state.get('url') or nats_state.get('error') or ''}",
    )  # fmt: skip

    services = Table(title="Services", title_justify="left", expand=False)
    for column in ("service", "health", "database", "nats", "outbox pending", "oldest pending", "url"):
        services.add_column(column, justify="right" if "pending" in column else "left")
    for svc in status["services"]:
        age = svc.get("outbox_oldest_pending_age_seconds")
        services.add_row(
            svc["name"],
            _health(svc["status"]),
            str(svc.get("database") or "–"),
            str(svc.get("nats") or "–"),
            "–" if svc.get("outbox_pending") is None else str(svc["outbox_pending"]),
            "–" if age is None else f"{age:.1f} s",
            svc["url"],
        )

    streams = Table(title="Streams", title_justify="left")
    for column in ("stream", "messages", "bytes", "replicas", "consumers"):
        streams.add_column(column, justify="left" if column == "stream" else "right")
    for s in status["streams"]:
        streams.add_row(s["name"], f"{s['messages']:,}", _size(s["bytes"]), str(s["replicas"]), str(s["consumers"]))

    consumers = Table(title="Durable consumers", title_justify="left")
    for column in ("consumer", "stream", "lag (pending)", "ack pending", "redelivered"):
        consumers.add_column(column, justify="left" if column in ("consumer", "stream") else "right")
    for c in status["consumers"]:
        lag = Text(f"{c['num_pending']:,}", style="yellow" if c["num_pending"] > 1000 else "")
        consumers.add_row(c["name"], c["stream"], lag, str(c["num_ack_pending"]), str(c["num_redelivered"]))

    letters = status["dead_letters"]
    dlq = Table(
        title=f"Dead letters ({letters['total'] if letters['total'] is not None else '?'})", title_justify="left"
    )
    dlq.add_column("consumer")
    dlq.add_column("reason")
    dlq.add_column("count", justify="right")
    for consumer, reasons in letters["by_consumer"].items():
        for reason, count in reasons.items():
            dlq.add_row(consumer, Text(reason, style="red"), str(count))
    return Group(header, services, streams, consumers, dlq)


# --- command --------------------------------------------------------------------------------------


async def _connect(url: str | None) -> NATS | None:
    """One quick attempt (no reconnect loop): a dead server is reported, not waited for."""
    nats_url, auth = operator_connection(url)

    async def quiet(_: Exception) -> None:
        return None

    try:
        connecting = nats.connect(
            servers=[u.strip() for u in nats_url.split(",") if u.strip()],
            name="iioe-status",
            connect_timeout=2,
            allow_reconnect=False,
            error_cb=quiet,
            **(auth.connect_kwargs() if auth else {}),
        )
        return await asyncio.wait_for(connecting, 5)  # nats-py retries a refused first connect regardless
    except Exception:
        return None


async def _once(url: str | None, as_json: bool) -> int:
    nc = await _connect(url)
    try:
        status = await collect(nc, service_urls())
    finally:
        if nc is not None:
            await nc.close()
    if as_json:
        print(json.dumps(status, indent=2))
    else:
        Console().print(render(status))
    return 0 if status["ok"] else 1


async def _watch(url: str | None, interval: float, as_json: bool) -> int:
    nc = await _connect(url)
    urls = service_urls()
    console = Console()
    try:
        if as_json:  # one JSON object per line, for a pipe
            while True:
                print(json.dumps(await collect(nc, urls)), flush=True)
                await asyncio.sleep(interval)
        with Live(render(await collect(nc, urls)), console=console, auto_refresh=False, screen=False) as live:
            while True:
                await asyncio.sleep(interval)
                if nc is None or nc.is_closed:
                    nc = await _connect(url)
                live.update(render(await collect(nc, urls)), refresh=True)
    finally:
        if nc is not None:
            await nc.close()


def _run(args: argparse.Namespace) -> int:
    configure_logging("iioe-status", os.environ.get("LOG_LEVEL", "WARNING"))  # stderr: stdout stays JSON
    if args.watch is None:
        return asyncio.run(_once(args.nats_url, args.json))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_watch(args.nats_url, args.watch, args.json))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("status", help="streams, consumer lag, dead letters, services and outboxes at a glance")
    p.add_argument("--nats-url", default=None, help="default: NATS_URL, else the platform of IIOE_DATA_DIR")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --watch: one per line)")
    p.add_argument(
        "--watch", type=float, nargs="?", const=2.0, default=None, metavar="SECONDS", help="refresh (default 2 s)"
    )
    p.set_defaults(func=_run)
