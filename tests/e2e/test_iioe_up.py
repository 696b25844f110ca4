"""`iioe up` as a user runs it: a subprocess that brings the platform up and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from iioe_tools.cli.up import SERVICES
from iioe_tools.embedded import free_port

pytestmark = pytest.mark.e2e


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float, seen: list[str]) -> None:
    """Block until the process prints `needle` (select on its output, no polling), exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    pending = ""
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 65536)
        if not chunk:  # end of output: the process has exited
            break
        *lines, pending = (pending + chunk.decode(errors="replace")).split("\n")
        seen.extend(line + "\n" for line in lines)
        if any(needle in line for line in lines):
            return
    raise AssertionError(f"{needle!r} not printed; output:\n{''.join(seen)}{pending}")


def test_iioe_up_runs_the_platform_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["IIOE_NATS_PORT"] = str(free_port())
    ports = {svc.name: free_port() for svc in SERVICES}
    for svc in SERVICES:
        env[svc.port_env] = str(ports[svc.name])
    data_dir = tmp_path / "data"
    cmd = [sys.executable, "-m", "iioe_tools.cli.main", "up", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        wait_for_line(proc, "IIOE platform is up", 120, seen)
        base = f"http://127.0.0.1:{ports['registration']}"
        body = {"institution": "must", "full_name": "Up Test", "email": "up@must.edu.mn", "language": "en"}
        operator = {"Authorization": f"Bearer {(data_dir / 'operator-token').read_text().strip()}"}
        assert httpx.post(f"{base}/v1/educators", json=body, timeout=10).status_code == 401  # a token is needed
        created = httpx.post(f"{base}/v1/educators", json=body, headers=operator, timeout=10)
        assert created.status_code == 201, created.text
        educator_id = created.json()["educator_id"]
        got = httpx.get(f"{base}/v1/educators/{educator_id}", headers=operator, timeout=10)
        assert got.json()["email"] == "up@must.edu.mn"

        # `iioe status` reads this platform as the operator (its NATS requires credentials)
        status = subprocess.run(
            [sys.executable, "-m", "iioe_tools.cli.main", "status", "--json"],
            env={**env, "IIOE_DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert {s["name"] for s in report["services"] if s["status"] == "ok"} == {svc.name for svc in SERVICES}
        assert {"IIOE_EVENTS", "IIOE_CONTACTS", "IIOE_DLQ"} <= {s["name"] for s in report["streams"]}
        assert report["consumers"] and report["dead_letters"]["total"] == 0
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    rest = proc.stdout.read() if proc.stdout else ""
    assert code == 0, "".join(seen) + rest
    assert "[iioe] stopped" in rest or "[iioe] stopped" in "".join(seen)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{ports['registration']}/healthz", timeout=2)

    # data persists: a second run finds the same educator
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        wait_for_line(proc, "IIOE platform is up", 120, seen)
        operator = {"Authorization": f"Bearer {(data_dir / 'operator-token').read_text().strip()}"}
        again = httpx.post(
            f"http://127.0.0.1:{ports['registration']}/v1/educators", json=body, headers=operator, timeout=10
        )
        assert again.json() == {"educator_id": educator_id, "status": "already_registered"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0


def test_busy_port_gives_a_clear_message_naming_the_setting(tmp_path: Path) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
        env["IIOE_REGISTRATION_HTTP_PORT"] = str(port)
        result = subprocess.run(
            [sys.executable, "-m", "iioe_tools.cli.main", "up", "--data-dir", str(tmp_path / "d")],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"HTTP port {port}" in result.stdout and "IIOE_REGISTRATION_HTTP_PORT" in result.stdout


def test_ctrl_c_stops_the_platform_even_when_started_in_the_background(tmp_path: Path) -> None:
    """A shell starts background jobs with SIGINT ignored; `iioe up` must still stop on it."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    env["IIOE_NATS_PORT"] = str(free_port())
    env["IIOE_REGISTRATION_HTTP_PORT"] = str(free_port())
    cmd = [
        sys.executable,
        "-m",
        "iioe_tools.cli.main",
        "up",
        "--only",
        "registration",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    seen: list[str] = []
    try:
        wait_for_line(proc, "IIOE platform is up", 120, seen)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
