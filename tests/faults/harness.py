"""The chaos harness: the platform as OS processes on its own nats-server and PostgreSQL, a partner
burst with a ledger, and an account of every effect (certificate, projection, mail) after a fault.

Every server and service runs on loopback free ports in temp dirs and is killed at the end.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from iioe.envelope import event_headers, make_event
from iioe.events import (
    COURSE_COMPLETED,
    EDUCATOR_CONTACT,
    EDUCATOR_REGISTERED,
    CourseCompleted,
    EducatorContact,
    EducatorRegistered,
)
from iioe.runtime.dlq import list_dead_letters
from iioe.runtime.nats import connect, provision_streams
from iioe.subjects import EVENTS_STREAM
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.support.helpers import ServiceProcess, stream_messages, unique_ref

COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")
INSTITUTIONS = ("must", "num", "msue")
MAILS_PER_EDUCATOR = 2  # welcome + certificate
TOKEN = "faults-operator-token"


@dataclass
class LedgerEntry:
    event_id: str
    type: str
    educator_id: str
    poison: bool = False
    attempts: int = 0
    acked_at: float | None = None


@dataclass
class Ledger:
    """Every event the partners attempted, whether JetStream acknowledged it, and (after settling) its effects."""

    entries: list[LedgerEntry] = field(default_factory=list)
    effects: dict[str, dict[str, int]] = field(default_factory=dict)
    """educator id → {"certificates": n, "mails": n}"""
    projection: dict[str, Any] = field(default_factory=dict)

    @property
    def good(self) -> list[LedgerEntry]:
        return [e for e in self.entries if not e.poison]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {"events": [asdict(e) for e in self.entries], "effects": self.effects, "projection": self.projection},
                indent=1,
            )
        )


@dataclass
class Result:
    scenario: str
    events: int
    acknowledged: int
    lost: int
    duplicated: int
    dead_letters_good: int
    dead_letters_poison: int
    poison: int
    recovery_seconds: float
    notes: str = ""
    world_failures: int = 0
    """Handler failures the services blamed on the world (uncounted naks), from their logs: proof the fault hit."""
    pauses: int = 0
    """Times a consumer paused for its dependencies."""
    duplicated_mails: int = 0
    """Of `duplicated`: mails sent more than once."""
    dead_tasks: int = 0
    """Background tasks that died in a service (a liveness failure), from the logs."""

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.dead_tasks == 0
            and self.dead_letters_good == 0
            and self.acknowledged == self.events
            and self.dead_letters_poison >= self.poison
        )


class Platform:
    """nats-server (or a given cluster URL) + PostgreSQL + certification, analytics and notifications."""

    def __init__(self, root: Path, smtp_port: int, *, replicas: int = 1, nats_url: str | None = None) -> None:
        self.root = root
        self.ref = unique_ref("f")
        self.pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="iioe-faults-pg-")), free_port())
        self.nats = None if nats_url else EmbeddedNats(root / "nats", free_port())
        self._nats_url = nats_url
        self.smtp_port = smtp_port
        self.services: dict[str, list[ServiceProcess]] = {}
        self.replicas = replicas

    @property
    def nats_url(self) -> str:
        return self._nats_url or (self.nats.url if self.nats else "")

    def env(self, name: str) -> dict[str, str]:
        p = f"IIOE_{name.upper()}_"
        env = {
            "NATS_URL": self.nats_url,
            "DATABASE_URL": self.pg.url,
            "IIOE_DATA_DIR": str(self.root / "data"),
            "LOG_LEVEL": "INFO",
            f"{p}CONSUMER_PREFIX": f"{self.ref}-",
            f"{p}API_TOKEN": TOKEN,
            f"{p}ACK_WAIT_SECONDS": "5",
            f"{p}OUTBOX_POLL_SECONDS": "0.1",
            f"{p}RETRY_BACKOFF_SECONDS": "[0.2, 0.5, 1.0]",
            f"{p}OUTAGE_BACKOFF_INITIAL_SECONDS": "0.2",
            f"{p}OUTAGE_BACKOFF_MAX_SECONDS": "2",
        }
        if name == "notifications":
            env |= {
                f"{p}SMTP_HOST": "127.0.0.1",
                f"{p}SMTP_PORT": str(self.smtp_port),
                f"{p}SMTP_STARTTLS": "false",
                f"{p}MAIL_POLL_SECONDS": "0.1",
                f"{p}MAIL_RETRY_BASE_SECONDS": "0.5",
                f"{p}MAIL_RETRY_CAP_SECONDS": "2",
                f"{p}MAIL_MAX_ATTEMPTS": "1000",
                f"{p}SMTP_TIMEOUT_SECONDS": "5",
                f"{p}SEND_LEASE_SECONDS": "10",
            }
        if name == "analytics":
            env[f"{p}SNAPSHOT_INTERVAL_SECONDS"] = "0.5"
        return env

    async def start(self) -> None:
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.pg.start)
        if self.nats is not None:
            self.nats.start()
        nc = await connect(self.nats_url, "faults-provision")
        try:
            await provision_streams(nc.jetstream())
        finally:
            await nc.close()
        for name in ("certification", "analytics", "notifications"):
            self.services[name] = [
                ServiceProcess(name, self.env(name), free_port(), self.root / f"{name}-{i}.log")
                for i in range(self.replicas)
            ]
        # one at a time: replicas of a service must not race each other's first migration
        for processes in self.services.values():
            for process in processes:
                process.start()
                await process.wait_healthy(timeout=60)

    def stop(self) -> None:
        for processes in self.services.values():
            for process in processes:
                process.stop()
        if self.nats is not None:
            self.nats.stop()
        self.pg.stop()
        shutil.rmtree(self.pg.data_dir, ignore_errors=True)

    # --- faults -------------------------------------------------------------------------------------------

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(self.pg.stop)

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.pg.start)

    def kill_nats(self) -> None:
        assert self.nats is not None and self.nats.process is not None
        self.nats.process.kill()
        self.nats.process.wait(10)
        self.nats.process = None

    def start_nats(self) -> None:
        assert self.nats is not None
        self.nats.start()

    def log_counts(self) -> tuple[int, int, int]:
        """(uncounted world failures, consumer pauses, background tasks died) as the services logged them."""
        failures = pauses = died = 0
        for processes in self.services.values():
            for process in processes:
                text = Path(process.log_path).read_text(errors="replace") if Path(process.log_path).exists() else ""
                failures += text.count("not counted")
                pauses += text.count("consumer paused")
                died += text.count("background task died")
        return failures, pauses, died

    # --- effects ------------------------------------------------------------------------------------------

    async def summary(self) -> dict[str, Any]:
        base = self.services["analytics"][0].base_url
        async with httpx.AsyncClient(timeout=3) as client:
            response = await client.get(f"{base}/v1/analytics/summary")
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data


class Burst:
    """Partners publishing: per educator a contact, a registration and three completions (plus poison)."""

    def __init__(
        self, nc: NATS, ledger: Ledger, educators: list[str], poison_ratio: float = 0.0, per_second: float = 0
    ) -> None:
        self.per_second = per_second
        """Pace (events/s; 0 = as fast as PubAcks come), so faults can land in the middle of the traffic."""
        self.js = nc.jetstream()
        self.ledger = ledger
        self.educators = educators
        self.poison_ratio = poison_ratio
        self.published = 0
        self.total = len(educators) * 5
        self._progress = asyncio.Condition()

    async def send(self, subject: str, body: bytes, headers: dict[str, str], entry: LedgerEntry) -> None:
        """Re-send with the same Nats-Msg-Id until a PubAck says it is stored (bounded)."""
        self.ledger.entries.append(entry)
        deadline = time.monotonic() + 240
        delay = 0.05
        while True:
            entry.attempts += 1
            try:
                await self.js.publish(subject, body, headers=headers, timeout=2.0)
                entry.acked_at = time.time()
                return
            except Exception:
                if time.monotonic() > deadline:
                    return  # never acknowledged: the ledger shows it
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def run(self) -> None:
        poison_every = round(1 / self.poison_ratio) if self.poison_ratio else 0
        n = 0
        for i, educator in enumerate(self.educators):
            inst = INSTITUTIONS[i % len(INSTITUTIONS)]
            address = f"{educator}@example.mn"
            contact = make_event(
                EducatorContact(
                    educator_id=educator, institution=inst, full_name=f"E {i}", email=address, language="en"
                ),
                event_type=EDUCATOR_CONTACT.type,
                source="urn:iioe:service:registration",
            )
            registered = make_event(
                EducatorRegistered(
                    educator_id=educator,
                    institution=inst,
                    language="en",
                    role="educator",
                    registered_at=datetime.now(UTC),
                ),
                event_type=EDUCATOR_REGISTERED.type,
                source="urn:iioe:service:registration",
            )
            await self.send(
                EDUCATOR_CONTACT.subject(inst),
                contact.to_json_bytes(),
                event_headers(contact),
                LedgerEntry(contact.id, "educator_contact", educator),
            )
            await self.send(
                EDUCATOR_REGISTERED.subject(inst),
                registered.to_json_bytes(),
                event_headers(registered),
                LedgerEntry(registered.id, "educator_registered", educator),
            )
            await self._count()
            for course in COURSES:
                completed = make_event(
                    CourseCompleted(
                        educator_id=educator,
                        institution=inst,
                        course_id=course,
                        score=85 + i % 15,
                        completed_at=datetime.now(UTC),
                    ),
                    event_type=COURSE_COMPLETED.type,
                    source="urn:iioe:partner:faults-lms",
                )
                await self.send(
                    COURSE_COMPLETED.subject(inst),
                    completed.to_json_bytes(),
                    event_headers(completed),
                    LedgerEntry(completed.id, "course_completed", educator),
                )
                await self._count()
                n += 1
                if poison_every and n % poison_every == 0:
                    poison_id = f"poison-{educator}-{course}"
                    await self.send(
                        COURSE_COMPLETED.subject(inst),
                        b'{"specversion": "1.0", "id": "' + poison_id.encode() + b'", "oops": ',
                        {"Nats-Msg-Id": poison_id},
                        LedgerEntry(poison_id, "poison", educator, poison=True),
                    )
            await self._count()  # the contact

    async def _count(self) -> None:
        if self.per_second:
            await asyncio.sleep(1 / self.per_second)  # load shaping, not a wait
        async with self._progress:
            self.published += 1
            self._progress.notify_all()

    async def reached(self, fraction: float) -> None:
        """Until this share of the burst is published (bounded by the burst itself)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.published >= fraction * self.total)


async def account(platform: Platform, nc: NATS, ledger: Ledger, mails: Callable[[str], int]) -> tuple[int, int, int]:
    """(lost, duplicated, of which mails) effects: certificates, projections and mails against the ledger."""
    educators = sorted({e.educator_id for e in ledger.good if e.acked_at is not None})
    issued = Counter(
        m.json()["data"]["educator_id"]
        for m in await stream_messages(nc, EVENTS_STREAM, "iioe.events.*.certificate_issued.v1")
    )
    lost = duplicated = duplicated_mails = 0
    for educator in educators:
        certificates, sent = issued[educator], mails(f"{educator}@example.mn")
        ledger.effects[educator] = {"certificates": certificates, "mails": sent}
        lost += max(0, 1 - certificates) + max(0, MAILS_PER_EDUCATOR - sent)
        duplicated += max(0, certificates - 1) + max(0, sent - MAILS_PER_EDUCATOR)
        duplicated_mails += max(0, sent - MAILS_PER_EDUCATOR)
    try:
        summary = await platform.summary()
    except Exception:
        summary = {}
    completions = sum(1 for e in ledger.good if e.type == "course_completed" and e.acked_at is not None)
    expected = {
        "educators_registered": len(educators),
        "course_completions": completions,
        "certificates_issued": len(educators),
    }
    ledger.projection = {k: summary.get(k) for k in expected}
    for key, want in expected.items():
        got = int(summary.get(key) or 0)
        lost += max(0, want - got)
        duplicated += max(0, got - want)
    return lost, duplicated, duplicated_mails


async def settle(
    platform: Platform, nc: NATS, ledger: Ledger, mails: Callable[[str], int], timeout: float
) -> tuple[int, int, int, float]:
    """Poll the effects until nothing is missing (or `timeout`); returns (lost, duplicated, of which mails, s)."""
    started = time.monotonic()
    while True:
        lost, duplicated, duplicated_mails = await account(platform, nc, ledger, mails)
        if lost == 0 or time.monotonic() - started > timeout:
            return lost, duplicated, duplicated_mails, time.monotonic() - started
        await asyncio.sleep(0.5)


async def dead_letters(nc: NATS, ledger: Ledger) -> tuple[int, int]:
    """(letters of good events, letters of poison) in IIOE_DLQ."""
    poison_ids = {e.event_id for e in ledger.entries if e.poison}
    good = bad = 0
    for letter in await list_dead_letters(nc.jetstream(), limit=100_000):
        if any(pid.encode() in base64.b64decode(letter.data_base64) for pid in poison_ids):
            bad += 1
        else:
            good += 1
    return good, bad


Fault = Callable[[Platform, Burst], Awaitable[str]]
