"""The shipped deployment configs carry the accounts, the secrets stay out of the repository (issue #9).

- deploy/nats/accounts.conf is exactly what `iioe deploy-config accounts` generates (drift);
- nats-server accepts it, and the shipped server configs that include it with TLS, once the
  password variables are set — and refuses to start while one is missing;
- a nats-server run from deploy/nats/nats.conf refuses anonymous and plain-text clients and
  lets a service in with its own password over TLS, with the permissions of `iioe.access`;
- docker-compose.yml and the k8s manifests hand each service only its own NATS user, password,
  inbox prefix and PostgreSQL role, all from the generated secrets;
- deploy/scripts/make-secrets.sh writes every variable accounts.conf references, keeps values
  on a re-run, and a certificate the servers accept.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
import yaml

from iioe.access import SERVICE_NAMES, inbox_prefix, service_user
from iioe.runtime.nats import connect
from iioe.runtime.settings import NatsAuthOptions
from iioe_tools.deploy_config import (
    ACCOUNTS_FILE,
    PARTNERS_FILE,
    db_password_variable,
    nats_variables,
    password_variable,
    read_partners,
    render_accounts_conf,
)
from iioe_tools.embedded import nats_server_binary

ROOT = Path(__file__).resolve().parents[1]
NATS_DIR = ROOT / "deploy" / "nats"
MAKE_SECRETS = ROOT / "deploy" / "scripts" / "make-secrets.sh"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="make-secrets.sh needs openssl")


def partners() -> list[str]:
    return read_partners(PARTNERS_FILE)


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nats_server_binary(), "-t", "-c", str(config)],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("make-secrets.sh needs openssl")
    directory = tmp_path_factory.mktemp("secrets")
    subprocess.run([str(MAKE_SECRETS), str(directory)], check=True, capture_output=True, timeout=60)
    return directory


def test_committed_accounts_conf_is_the_generators_output() -> None:
    assert ACCOUNTS_FILE.read_text() == render_accounts_conf(partners()), (
        "deploy/nats/accounts.conf is stale: run `iioe deploy-config accounts` and commit it"
    )


def test_accounts_conf_holds_no_secret_only_variable_references() -> None:
    text = ACCOUNTS_FILE.read_text()
    passwords = re.findall(r"^\s*password: (.*)$", text, flags=re.M)
    assert passwords and all(re.fullmatch(r"\$IIOE_NATS_PASSWORD_[A-Z0-9_]+", p) for p in passwords), passwords
    assert sorted(p[1:] for p in passwords) == sorted(nats_variables(partners()))
    users = re.findall(r'^\s*user: "([^"]+)"', text, flags=re.M)
    assert {service_user(s) for s in SERVICE_NAMES} | {"dashboard", "operator", "sys"} <= set(users)
    assert {f"partner-{code}" for code in partners()} <= set(users)


def test_nats_server_accepts_accounts_conf_only_with_every_password_set() -> None:
    env = {name: "pw-" + name.lower() for name in nats_variables(partners())}
    result = check_config(ACCOUNTS_FILE, env)
    assert result.returncode == 0, result.stderr
    missing = dict(env)
    del missing[password_variable("svc-certification")]
    result = check_config(ACCOUNTS_FILE, missing)
    assert result.returncode != 0
    assert "IIOE_NATS_PASSWORD_SVC_CERTIFICATION" in result.stderr


def shipped_configs(tmp: Path, tls_dir: Path, store: Path) -> Path:
    """deploy/nats copied with the container paths (/etc/nats/tls, /data) pointed at local ones."""
    target = tmp / "nats"
    shutil.copytree(NATS_DIR, target)
    for conf in [target / "nats.conf", *sorted((target / "cluster").glob("nats-*.conf"))]:
        text = conf.read_text().replace("/etc/nats/tls/", f"{tls_dir}/").replace('"/data"', f'"{store}"')
        conf.write_text(text)
    return target


def test_shipped_server_configs_include_accounts_and_tls(secrets_dir: Path, tmp_path: Path) -> None:
    configs = shipped_configs(tmp_path, secrets_dir / "tls", tmp_path / "store")
    env = env_file(secrets_dir / "nats.env")
    for conf in [configs / "nats.conf", *sorted((configs / "cluster").glob("nats-*.conf"))]:
        text = conf.read_text()
        assert re.search(r"^include (\.\./)?accounts\.conf$", text, flags=re.M), conf.name
        assert re.search(r"^tls \{", text, flags=re.M), conf.name
        if conf.parent.name == "cluster":  # routes: mutual TLS, the peer's certificate verified
            cluster = text[text.index("\ncluster {") :]
            assert re.search(r"tls \{[^}]*ca_file:[^}]*verify: true", cluster), conf.name
        result = check_config(conf, env)
        assert result.returncode == 0, f"{conf.name}: {result.stderr}"
        assert check_config(conf, {}).returncode != 0, f"{conf.name} starts without the passwords"


@pytest.fixture
async def shipped_server(secrets_dir: Path, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """deploy/nats/nats.conf (accounts + TLS) on a free loopback port."""
    configs = shipped_configs(tmp_path, secrets_dir / "tls", tmp_path / "store")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = env_file(secrets_dir / "compose.env")
    proc = await asyncio.create_subprocess_exec(
        nats_server_binary(),
        *("-c", str(configs / "nats.conf"), "-a", "127.0.0.1", "-p", str(port), "-m", "0"),
        env={"PATH": os.environ.get("PATH", ""), **env_file(secrets_dir / "nats.env")},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield f"nats://127.0.0.1:{port}", env
    finally:
        proc.terminate()
        await proc.wait()


async def refused(url: str, **options: Any) -> str:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    try:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=5, error_cb=on_error, **options)
    except Exception as exc:  # any refusal will do; the message says which
        errors.append(exc)
    else:
        await nc.close()
        pytest.fail(f"connected with {sorted(options)}")
    return " ".join(repr(e) for e in errors).lower()


async def test_shipped_server_refuses_anonymous_and_plain_text_and_admits_a_service(
    shipped_server: tuple[str, dict[str, str]], secrets_dir: Path
) -> None:
    url, env = shipped_server
    ca = secrets_dir / "tls" / "ca.crt"
    tls = NatsAuthOptions(tls_ca_file=ca).connect_kwargs()
    assert "authorization" in await refused(url, **tls)
    user = service_user("certification")
    assert "authorization" in await refused(url, user=user, password="wrong", **tls)
    # plain text: the server announces TLS as required and drops a client that sends CONNECT in clear
    host, port = url.removeprefix("nats://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    info = json.loads((await reader.readline()).decode().removeprefix("INFO "))
    assert info["tls_required"] is True
    writer.write(f'CONNECT {{"user":"{user}","pass":"{env[password_variable(user)]}"}}\r\nPING\r\n'.encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    assert b"PONG" not in answer
    writer.close()

    auth = NatsAuthOptions(
        user=user, password=env[password_variable(user)], inbox_prefix=inbox_prefix(user), tls_ca_file=ca
    )
    nc = await connect(url, "deploy-config-test", connect_attempts=1, auth=auth)
    try:
        assert nc.is_connected
        # least privilege as in iioe.access: certification may not publish registration's events
        await nc.publish("iioe.events.must.educator_registered.v1", b"{}")
        await nc.flush()
        await asyncio.sleep(0.2)
        assert "permissions violation" in repr(nc.last_error).lower()
    finally:
        await nc.close()


def compose() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return config


def test_compose_hands_each_service_only_its_own_credentials() -> None:
    services = compose()["services"]
    for name in SERVICE_NAMES:
        env = services[name]["environment"]
        user = service_user(name)
        assert env["NATS_USER"] == user
        assert env["NATS_INBOX_PREFIX"] == inbox_prefix(user)
        assert env["NATS_PASSWORD"].startswith("${" + password_variable(user) + ":?")
        assert env["DATABASE_URL"].startswith(f"postgresql://iioe_{name}:${{{db_password_variable(name)}:?")
        assert env["NATS_TLS_CA"]
        referenced = set(re.findall(r"\$\{(IIOE_(?:NATS|DB)_PASSWORD_[A-Z0-9_]+)", yaml.safe_dump(env)))
        assert referenced == {password_variable(user), db_password_variable(name)}, (name, referenced)
        assert "POSTGRES_PASSWORD" not in yaml.safe_dump(env)
    provision = services["provision"]["environment"]
    assert provision["NATS_USER"] == "operator"
    for node in ("nats-1", "nats-2", "nats-3"):
        assert any(str(f).endswith("/nats.env") for f in services[node]["env_file"])
        volumes = services[node]["volumes"]
        assert any(v.startswith("./deploy/nats/accounts.conf:/etc/nats/accounts.conf") for v in volumes)
        assert any(v.endswith("/tls:/etc/nats/tls:ro") for v in volumes)
    for name in SERVICE_NAMES:
        assert services[name]["depends_on"]["db-init"]["condition"] == "service_completed_successfully"


def k8s_env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def test_k8s_manifests_read_each_services_own_secrets() -> None:
    k8s = ROOT / "deploy" / "k8s"
    for name in SERVICE_NAMES:
        docs = [d for d in yaml.safe_load_all((k8s / f"{name}.yaml").read_text()) if d]
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        env = k8s_env(pod["containers"][0])
        user = service_user(name)
        assert env["NATS_USER"] == user and env["NATS_INBOX_PREFIX"] == inbox_prefix(user)
        assert env["NATS_PASSWORD"]["secretKeyRef"] == {"name": "iioe-nats-passwords", "key": password_variable(user)}
        assert env["DATABASE_URL"]["secretKeyRef"] == {"name": "iioe-secrets", "key": f"database-url-{name}"}
        assert any(v.get("secret", {}).get("secretName") == "nats-tls" for v in pod["volumes"])
    template = {d["metadata"]["name"]: d for d in yaml.safe_load_all((k8s / "secret.template.yaml").read_text())}
    assert set(template["iioe-nats-passwords"]["stringData"]) == set(nats_variables(partners()))
    assert all(value == "" for d in template.values() for value in d["stringData"].values()), (
        "no values in the template"
    )
    config = yaml.safe_load((k8s / "configmap.yaml").read_text())["data"]
    assert config["NATS_TLS_CA"].startswith("/etc/iioe/nats-tls/")


@needs_openssl
def test_make_secrets_covers_every_variable_and_keeps_values(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    subprocess.run([str(MAKE_SECRETS), str(directory)], check=True, capture_output=True, timeout=60)
    first = env_file(directory / "compose.env")
    expected = set(nats_variables(partners())) | {db_password_variable(s) for s in SERVICE_NAMES}
    assert expected | {"POSTGRES_PASSWORD", "IIOE_OPERATOR_TOKEN", "IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY"} == set(
        first
    )
    assert set(env_file(directory / "nats.env")) == set(nats_variables(partners()))
    assert (directory / "compose.env").stat().st_mode & 0o077 == 0
    assert (directory / "tls" / "tls.key").stat().st_mode & 0o077 == 0
    assert not (directory / "tls" / "ca.key").exists(), "the CA key must not be mounted with the server's files"
    cert = (directory / "tls" / "tls.crt").read_bytes()
    subprocess.run([str(MAKE_SECRETS), str(directory)], check=True, capture_output=True, timeout=60)
    assert env_file(directory / "compose.env") == first
    assert (directory / "tls" / "tls.crt").read_bytes() == cert


def test_cli_checks_drift_and_lists_the_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from iioe_tools.cli.main import main

    monkeypatch.setenv("IIOE_DATA_DIR", str(tmp_path / "no-platform"))  # no embedded platform to reach

    assert main(["deploy-config", "accounts", "--check"]) == 0
    partners_file = tmp_path / "partners.txt"
    partners_file.write_text("# comment\nmust\nnum  # trailing comment\n")
    out = tmp_path / "accounts.conf"
    assert main(["deploy-config", "accounts", "--partners", str(partners_file), "--out", str(out), "--check"]) == 1
    assert main(["deploy-config", "accounts", "--partners", str(partners_file), "--out", str(out)]) == 0
    assert "$IIOE_NATS_PASSWORD_PARTNER_NUM" in out.read_text()
    capsys.readouterr()
    assert main(["deploy-config", "variables", "--partners", str(partners_file)]) == 0
    listed = capsys.readouterr().out.split()
    assert "IIOE_NATS_PASSWORD_PARTNER_NUM" in listed and "IIOE_DB_PASSWORD_ANALYTICS" in listed


def test_deployments_grant_exactly_what_the_embedded_server_grants(tmp_path: Path) -> None:
    from iioe_tools.deploy_config import deploy_users
    from iioe_tools.nats_auth import ACCOUNT, NatsAuth, render_account

    embedded = NatsAuth(tmp_path / "nats", host="127.0.0.1", port=4222)
    embedded.ensure_platform_users()
    embedded.add_partner("must")
    config = json.loads(embedded.config_path.read_text())
    granted = {u["user"]: u["permissions"] for u in config["accounts"][ACCOUNT]["users"]}
    shipped = render_account([(name, "-", role) for name, role in deploy_users(["must"])])
    assert {u["user"]: u["permissions"] for u in shipped["users"]} == granted
