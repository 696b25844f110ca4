"""The platform image as production runs it: four service containers on the host network
against a real NATS and PostgreSQL on loopback (the project's embedded servers, free ports;
NATS with authentication, each container connecting as its own user),
non-root, read-only root file system, ready on /readyz, healthy by the image's HEALTHCHECK,
the pilot simulation end to end, and a clean stop on SIGTERM within 10 s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from testcontainers.core.container import DockerContainer

from iioe.access import OPERATOR_USER, service_user
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from iioe_tools.nats_auth import NatsAuth
from tests.support.simulation import ANALYTICS_HAS_PROGRAMME, PENDING_REASON, unmatched_rows

from .conftest import IMAGE

pytestmark = pytest.mark.timeout(600)

SERVICES = ("registration", "certification", "analytics", "notifications")
IMAGE_UID = "10001"
TMPFS = {"/tmp": "mode=1777", "/var/lib/iioe": f"uid={IMAGE_UID},gid={IMAGE_UID},mode=0700"}


@dataclass
class Platform:
    nats_url: str
    ports: dict[str, int]
    containers: dict[str, DockerContainer]
    operator_env: dict[str, str]

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"


def _container(command: list[str], env: dict[str, str]) -> DockerContainer:
    container = DockerContainer(IMAGE).with_command(command).with_envs(**env)
    container.tmpfs.update(TMPFS)
    # What docker-compose.yml and the k8s manifests set: read-only root, writable tmpfs for
    # /tmp and the data directory (owned by the image's user), no capabilities.
    return container.with_kwargs(
        network_mode="host",
        read_only=True,
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
    )


def _wait_ready(url: str, container: DockerContainer, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{url}/readyz", timeout=3)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        container.get_wrapped_container().reload()
        if container.get_wrapped_container().status == "exited":
            break
        time.sleep(0.5)
    logs = container.get_wrapped_container().logs(tail=40).decode(errors="replace")
    raise AssertionError(f"{url}/readyz not 200 after {timeout:g} s (last: {last!r}); logs:\n{logs}")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    client = docker.from_env()
    client.images.get(IMAGE)  # must exist locally (`make image`); never pulled
    nats_port = free_port()
    auth = NatsAuth(tmp_path_factory.mktemp("nats"), host="127.0.0.1", port=nats_port)
    auth.ensure_platform_users()  # anonymous clients are refused, as in every deployment
    nats = EmbeddedNats(auth.dir, nats_port, config=auth.config_path).start()
    operator_env = auth.credentials(OPERATOR_USER).env()
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg"), free_port()).start()
    containers: dict[str, DockerContainer] = {}
    try:
        provision = client.containers.run(
            IMAGE,
            ["iioe", "provision", "--nats-url", nats.url],
            environment=operator_env,
            network_mode="host",
            read_only=True,
            tmpfs={"/tmp": "mode=1777"},
            detach=True,
        )
        status = provision.wait(timeout=60)
        logs = provision.logs().decode(errors="replace")
        provision.remove(force=True)
        assert status["StatusCode"] == 0, f"iioe provision failed in the container:\n{logs}"

        ports = {name: free_port() for name in SERVICES}
        common = {
            "NATS_URL": nats.url,
            "DATABASE_URL": pg.url,
            "LOG_LEVEL": "INFO",
            **{f"IIOE_{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()},
        }
        for name in SERVICES:
            env = (
                common
                | auth.credentials(service_user(name)).env()
                | {
                    f"IIOE_{name.upper()}_HTTP_HOST": "127.0.0.1",
                    f"IIOE_{name.upper()}_HTTP_PORT": str(ports[name]),
                }
            )
            containers[name] = _container(["python", "-m", f"services.{name}"], env).start()
        platform = Platform(nats.url, ports, containers, operator_env)
        for name in SERVICES:
            _wait_ready(platform.url(name), containers[name])
        yield platform
    finally:
        for container in containers.values():
            try:
                container.stop()
            except docker.errors.NotFound:
                pass
        pg.stop()
        nats.stop()


def test_every_service_becomes_ready_and_live(platform: Platform) -> None:
    for name in SERVICES:
        assert httpx.get(f"{platform.url(name)}/readyz", timeout=5).status_code == 200, name
        assert httpx.get(f"{platform.url(name)}/livez", timeout=5).status_code == 200, name


def test_services_run_as_the_image_user_on_a_read_only_root(platform: Platform) -> None:
    for name, container in platform.containers.items():
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        assert wrapped.attrs["Config"]["User"].split(":")[0] == IMAGE_UID, name
        assert wrapped.attrs["HostConfig"]["ReadonlyRootfs"] is True, name
        code, out = wrapped.exec_run(["id", "-u"])
        assert (code, out.decode().strip()) == (0, IMAGE_UID), name
        code, out = wrapped.exec_run(["touch", "/opt/venv/written"])
        assert code != 0 and b"Read-only file system" in out, name
        code, _ = wrapped.exec_run(["touch", "/var/lib/iioe/written", "/tmp/written"])
        assert code == 0, f"{name}: the tmpfs data directory must be writable"


def test_pilot_simulation_end_to_end(platform: Platform) -> None:
    iioe = shutil.which("iioe", path=str(Path(sys.executable).parent)) or shutil.which("iioe")
    assert iioe, "the `iioe` console script of this virtualenv"
    seed = secrets.randbelow(2**31) + 10_000
    timeout = "180" if ANALYTICS_HAS_PROGRAMME else "60"  # without §10 it ends in a (pending) mismatch
    run = subprocess.run(
        [
            iioe, "simulate", "--nats-url", platform.nats_url, "--analytics-url", platform.url("analytics"),
            "--seed", str(seed), "--educators", "120", "--timeout", timeout, "--settle", "1", "--json", "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | platform.operator_env | {"NO_COLOR": "1"},
    )  # fmt: skip
    out = run.stdout
    assert run.returncode in (0, 1), f"iioe simulate exited {run.returncode}:\n{out[-3000:]}\n{run.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(out[out.index("{") :])
    pending = unmatched_rows(report, run.returncode)
    assert report["ok"] == (not pending)
    assert report["drive"]["new_registrations"] == 120
    truth = report["ground_truth"]
    assert truth["certificates_issued"] > 0, "the scenario must certify someone"
    after = report["after"]
    assert after["certificates_issued"] >= truth["certificates_issued"]
    if pending:
        pytest.xfail(f"{PENDING_REASON}; not yet matching: {sorted(pending)}")


def test_image_healthcheck_reports_healthy(platform: Platform) -> None:
    deadline = time.monotonic() + 60
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for name, container in platform.containers.items():
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            states[name] = wrapped.attrs["State"]["Health"]["Status"]
        if all(s == "healthy" for s in states.values()):
            return
        time.sleep(1)
    raise AssertionError(f"HEALTHCHECK (/livez) states after 60 s: {states}")


def test_services_stop_on_sigterm_within_10_seconds(platform: Platform) -> None:
    for name, container in platform.containers.items():
        wrapped = container.get_wrapped_container()
        started = time.monotonic()
        wrapped.kill(signal="SIGTERM")
        status = wrapped.wait(timeout=15)
        took = time.monotonic() - started
        assert took < 10, f"{name} took {took:.1f} s to stop on SIGTERM"
        # 137 would be SIGKILL; a clean shutdown exits 0 (143 if Python died of the signal).
        assert status["StatusCode"] in (0, 143), f"{name} exited {status['StatusCode']}"
        print(f"{name}: stopped {took:.1f} s after SIGTERM, exit {status['StatusCode']}")


def test_image_size() -> None:
    size = docker.from_env().images.get(IMAGE).attrs["Size"]
    print(f"{IMAGE}: {size / 1e6:.0f} MB")
    assert size < 600e6
