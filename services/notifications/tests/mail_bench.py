"""Mail throughput of a real notifications process: `python -m services.notifications.tests.mail_bench`.

Why: the service was the platform's slowest consumer (issue #11). This pushes a backlog of
`EducatorContact` + `EducatorRegistered` + `CertificateIssued` events (the simulation's mix, about
3.5 welcome mails per certificate mail) through `python -m services.notifications` on an embedded
nats-server and PostgreSQL, and reports how long and how many CPU seconds of the service process it
took until every mail was `sent` (mailbox channel unless `--smtp`, then a local aiosmtpd sink).
CPU seconds per 1,000 mails is the number to compare: it does not depend much on what else runs.
The process id is printed so `py-spy record -p PID` can profile the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx

from iioe.envelope import event_headers, make_event
from iioe.events import (
    CERTIFICATE_ISSUED,
    EDUCATOR_CONTACT,
    EDUCATOR_REGISTERED,
    CertificateIssued,
    EducatorContact,
    EducatorRegistered,
)
from iioe.runtime.nats import connect, provision_streams
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port

INSTITUTIONS = ("must", "num", "msue", "muls", "mnums")
LANGUAGES = ("mn", "mn", "en", "ru")
NAMES = {"mn": "Батын Сарнай", "en": "Dorj Bat", "ru": "Анна Петрова"}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


async def publish_backlog(nats_url: str, educators: int, certificates: int) -> None:
    nc = await connect(nats_url, "mail-bench")
    js = nc.jetstream()
    await provision_streams(js)
    now = datetime.now(UTC)

    async def send(spec: object, data: EducatorContact | EducatorRegistered | CertificateIssued) -> None:
        event = make_event(data, event_type=spec.type, source="urn:iioe:bench", subject=data.educator_id)  # type: ignore[attr-defined]
        await js.publish(spec.subject(data.institution), event.to_json_bytes(), headers=event_headers(event))  # type: ignore[attr-defined]

    pending: list[asyncio.Future[None]] = []
    for i in range(educators):
        inst = INSTITUTIONS[i % len(INSTITUTIONS)]
        lang = LANGUAGES[i % len(LANGUAGES)]
        edu = f"edu-bench-{i:07d}"
        pending.append(
            asyncio.ensure_future(
                send(
                    EDUCATOR_CONTACT,
                    EducatorContact(
                        educator_id=edu,
                        institution=inst,
                        full_name=NAMES[lang],
                        email=f"e{i}@example.mn",
                        language=lang,
                    ),
                )
            )
        )
        pending.append(
            asyncio.ensure_future(
                send(
                    EDUCATOR_REGISTERED,
                    EducatorRegistered(
                        educator_id=edu, institution=inst, language=lang, role="educator", registered_at=now
                    ),
                )
            )
        )
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending.clear()
    for i in range(certificates):
        inst = INSTITUTIONS[i % len(INSTITUTIONS)]
        pending.append(
            asyncio.ensure_future(
                send(
                    CERTIFICATE_ISSUED,
                    CertificateIssued(
                        certificate_id=f"cert-bench-{i:07d}",
                        educator_id=f"edu-bench-{i:07d}",
                        institution=inst,
                        programme_id="ai-in-higher-education",
                        course_ids=["genai-fundamentals", "teaching-with-ai", "future-classroom"],
                        credits=3,
                        issued_at=now,
                        credential="eyJhbGciOiJFZERTQSJ9.e30.c2ln",
                    ),
                )
            )
        )
        if len(pending) >= 500:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await nc.close()


async def counts(db_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'sent') AS sent FROM notifications.notifications"
        )
    except asyncpg.UndefinedTableError:
        return 0, 0
    finally:
        await conn.close()
    assert row is not None
    return int(row["total"]), int(row["sent"])


def start_service(env: dict[str, str], log_path: Path, cwd: Path | None) -> subprocess.Popen[bytes]:
    """`python -m services.notifications` as its own process (py-spy attaches to it), logging to a file;
    `cwd` is the checkout whose `services` package runs (another worktree gives the A of an A/B)."""
    log = log_path.open("wb")  # the child writes to it for its lifetime
    return subprocess.Popen([sys.executable, "-m", "services.notifications"], env=env, stdout=log, stderr=log, cwd=cwd)


async def healthy(proc: subprocess.Popen[bytes], port: int) -> None:
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"service exited with {proc.returncode}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/livez")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="mail-bench-"))
    pg = await asyncio.to_thread(EmbeddedPostgres(root / "pg", free_port()).start)
    nats = await asyncio.to_thread(EmbeddedNats(root / "nats", free_port()).start)
    smtp = None
    try:
        expected = args.educators + args.certificates
        t = time.monotonic()
        await publish_backlog(nats.url, args.educators, args.certificates)
        print(f"published {2 * args.educators + args.certificates} events in {time.monotonic() - t:.1f}s")
        env = {
            **os.environ,
            "NATS_URL": nats.url,
            "DATABASE_URL": pg.url,
            "IIOE_DATA_DIR": str(root / "data"),
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
            "IIOE_NOTIFICATIONS_HTTP_PORT": str(free_port()),
        }
        if args.smtp:
            from services.notifications.tests.fakes import smtp_server

            smtp = smtp_server()
            _, port = smtp.__enter__()
            env.update(
                IIOE_NOTIFICATIONS_SMTP_HOST="127.0.0.1",
                IIOE_NOTIFICATIONS_SMTP_PORT=str(port),
                IIOE_NOTIFICATIONS_SMTP_STARTTLS="false",
            )
        proc = start_service(env, root / "service.log", args.service_dir)
        print(f"service pid {proc.pid}, logs {root / 'service.log'}", flush=True)
        await healthy(proc, int(env["IIOE_NOTIFICATIONS_HTTP_PORT"]))
        start_cpu = cpu_seconds(proc.pid)  # imports and migrations are not the mail's cost
        start = time.monotonic()
        _, sent_before = await counts(pg.url)
        recorded_at = None
        sent = 0
        while True:
            await asyncio.sleep(0.25)
            if proc.poll() is not None:
                raise SystemExit(f"service exited with {proc.returncode}; see {root / 'service.log'}")
            total, sent = await counts(pg.url)
            if recorded_at is None and total >= expected:
                recorded_at = time.monotonic() - start
            if sent >= expected or time.monotonic() - start > args.timeout:
                break
        wall = time.monotonic() - start
        cpu = cpu_seconds(proc.pid) - start_cpu
        proc.terminate()
        proc.wait(15)
        timed = max(sent - sent_before, 1)
        print(
            f"mails={sent}/{expected} wall={wall:.1f}s recorded_at={recorded_at or float('nan'):.1f}s "
            f"mails/s={timed / wall:.0f} cpu={cpu:.1f}s cpu_per_1k={1000 * cpu / timed:.2f}s"
            f" (sent before timing: {sent_before})"
        )
    finally:
        if smtp is not None:
            smtp.__exit__(None, None, None)
        nats.stop()
        pg.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--educators", type=int, default=4000)
    parser.add_argument("--certificates", type=int, default=1150)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--service-dir", type=Path, default=None, help="checkout to run the service from")
    parser.add_argument("--smtp", action="store_true", help="send to a local aiosmtpd sink instead of the mailbox")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
