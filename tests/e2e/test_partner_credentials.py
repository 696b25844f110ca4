"""A partner of one institution onboarded against a running `iioe up`, as the contract (§8) tells it to.

`iioe up` starts its own authenticated nats-server (never borrowing a server it finds on the
port), `iioe credentials partner must --json` prints what the partner needs, and with it the
partner registers an educator and reports completions that end in a certificate; anonymous
clients are refused and a revoked partner is cut off.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest

from iioe_tools.cli.up import SERVICES
from iioe_tools.embedded import free_port

pytestmark = pytest.mark.e2e

COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            seen.append(line)
            if needle in line:
                return line
        elif proc.poll() is not None:
            break
        else:
            time.sleep(0.05)
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(seen)}")


def iioe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "iioe_tools.cli.main", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)


def completion(educator_id: str, course: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": f"lms-{uuid.uuid4()}",
        "source": "urn:iioe:partner:must-lms",
        "type": "org.iioe.learning.course_completed.v1",
        "time": now,
        "subject": educator_id,
        "datacontenttype": "application/json",
        "data": {
            "educator_id": educator_id,
            "institution": "must",
            "course_id": course,
            "score": 91,
            "completed_at": now,
        },
    }


async def act_as_partner(creds: dict[str, str]) -> str:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(creds["nats_url"], allow_reconnect=False, max_reconnect_attempts=0)
    nc = await nats.connect(
        creds["nats_url"], user=creds["user"], password=creds["password"], inbox_prefix=creds["inbox_prefix"]
    )
    try:
        body = {"full_name": "Partner Test", "email": f"p-{uuid.uuid4().hex[:8]}@must.edu.mn", "language": "mn"}
        reply = json.loads(
            (await nc.request("iioe.commands.must.register_educator", json.dumps(body).encode(), 10)).data
        )
        assert reply["status"] == "registered", reply
        js = nc.jetstream()
        for course in COURSES:
            event = completion(reply["educator_id"], course)
            headers = {"Nats-Msg-Id": str(event["id"]), "Content-Type": "application/cloudevents+json"}
            ack = await js.publish("iioe.events.must.course_completed.v1", json.dumps(event).encode(), headers=headers)
            assert ack.stream == "IIOE_EVENTS"
        with pytest.raises(nats.errors.TimeoutError):  # another institution's subject is refused
            await js.publish("iioe.events.num.course_completed.v1", b"{}", timeout=1)
        return str(reply["educator_id"])
    finally:
        await nc.close()


async def read_latest_summary(creds: dict[str, str]) -> dict[str, Any]:
    """A dashboard reads the latest snapshot, and nothing else (contract §8)."""
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(
        creds["nats_url"],
        user=creds["user"],
        password=creds["password"],
        inbox_prefix=creds["inbox_prefix"],
        error_cb=on_error,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            msg = await nc.jetstream().get_last_msg("IIOE_ANALYTICS", "iioe.analytics.summary", direct=True)
            summary: dict[str, Any] = json.loads(msg.data or b"{}")
            if summary.get("certificates_issued") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await nc.subscribe("iioe.events.>")
        await nc.flush()
        for _ in range(50):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert any("permissions violation" in e for e in errors), errors
        return summary
    finally:
        await nc.close()


def test_partner_onboarding_against_a_running_platform(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "IIOE_NATS_PORT")}
    data_dir = tmp_path / "data"
    env["IIOE_DATA_DIR"] = str(data_dir)
    ports = {svc.name: free_port() for svc in SERVICES}
    for svc in SERVICES:
        env[svc.port_env] = str(ports[svc.name])
    # the port the platform would use is taken by something else: it must not borrow it
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    data_dir.mkdir()
    (data_dir / "nats.port").write_text(str(taken))

    proc = subprocess.Popen(
        [sys.executable, "-m", "iioe_tools.cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        notice = wait_for_line(proc, f"port {taken} is taken", 120, seen)
        wait_for_line(proc, "IIOE platform is up", 120, seen)
        own_port = int(notice.rsplit(" ", 1)[1])
        assert own_port != taken

        made = iioe(env, "credentials", "partner", "must", "--json")
        assert made.returncode == 0, made.stderr
        creds = json.loads(made.stdout)
        assert creds["nats_url"] == f"nats://127.0.0.1:{own_port}"
        assert {"user", "password", "inbox_prefix", "http_token"} <= creds.keys()
        assert json.loads(iioe(env, "credentials", "partner", "must", "--json").stdout) == creds  # shown again

        educator_id = asyncio.run(act_as_partner(creds))
        token = (data_dir / "operator-token").read_text().strip()
        certificates_url = f"http://127.0.0.1:{ports['certification']}/v1/educators/{educator_id}/certificates"
        deadline = time.monotonic() + 60
        while True:
            body = httpx.get(certificates_url, headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
            if body.get("certificates"):
                break
            assert time.monotonic() < deadline, body
            time.sleep(0.2)

        dashboard = json.loads(iioe(env, "credentials", "dashboard", "--json").stdout)
        summary = asyncio.run(read_latest_summary(dashboard))
        assert summary["certificates_issued"] >= 1 and "email" not in json.dumps(summary)

        revoked = iioe(env, "credentials", "revoke", "must", "--json")
        assert revoked.returncode == 0, revoked.stderr
        assert json.loads(revoked.stdout)["nats_user_removed"] is True

        async def refused() -> None:
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await nats.connect(
                    creds["nats_url"], user=creds["user"], password=creds["password"], allow_reconnect=False
                )

        asyncio.run(refused())
        unknown = iioe(env, "credentials", "partner", "atlantis", "--json")
        assert unknown.returncode == 2 and "unknown institution" in unknown.stderr
    finally:
        squatter.close()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # personal data never reaches a log: no e-mail address in any service's log of this whole run
    email = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[a-z]{2,}")
    logs = sorted((data_dir / "logs").glob("*.log"))
    assert len(logs) == 4
    leaks = [(log.name, m.group(0)) for log in logs for m in email.finditer(log.read_text(errors="replace"))]
    assert leaks == []
