"""Authentication of the embedded nats-server: users, passwords and permissions under the data dir.

Choice (ADR-6): NATS accounts with users in the server configuration, not decentralized JWT.
One account (`IIOE`) holds every user, so streams need no cross-account exports; each user
gets the allow-lists of `iioe.access`. Adding or revoking a partner rewrites the file and
reloads the running server (SIGHUP via its pid file): a revoked user is disconnected at once.

Layout under `<data_dir>/nats/`:
* `nats.conf`          the whole server configuration (JSON, which nats-server reads natively), 0600
* `users.json`         user → password and role, 0600 (the source the configuration is rendered from)
* `nats-server.pid`    written by the server, read to reload it
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iioe.access import (
    DASHBOARD_USER,
    OPERATOR_USER,
    SERVICE_NAMES,
    Permissions,
    dashboard_permissions,
    operator_permissions,
    partner_permissions,
    partner_user,
    service_permissions,
    service_user,
)

ACCOUNT = "IIOE"


@dataclass(frozen=True)
class NatsCredentials:
    """What a client needs to connect as one user."""

    user: str
    password: str
    inbox_prefix: str | None

    def env(self) -> dict[str, str]:
        """The environment a service process reads (`NATS_USER`, `NATS_PASSWORD`, `NATS_INBOX_PREFIX`)."""
        env = {"NATS_USER": self.user, "NATS_PASSWORD": self.password}
        if self.inbox_prefix:
            env["NATS_INBOX_PREFIX"] = self.inbox_prefix
        return env


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    tmp.replace(path)


def permissions_of(user: str, role: dict[str, str]) -> Permissions:
    """The permissions of a user from its role (`{"kind": "service", "service": ...}` etc.)."""
    kind = role["kind"]
    if kind == "service":
        return service_permissions(role["service"])
    if kind == "partner":
        return partner_permissions(role["institution"])
    if kind == "dashboard":
        return dashboard_permissions()
    if kind == "operator":
        return operator_permissions()
    raise ValueError(f"user {user!r} has an unknown role {kind!r}")


def render_user(user: str, password: Any, perms: Permissions) -> dict[str, Any]:
    """One user of a nats-server `users` list (`password` is whatever the writer renders as a value)."""
    rendered: dict[str, Any] = {
        "publish": {"allow": list(perms.publish)},
        "subscribe": {"allow": list(perms.subscribe)},
    }
    if perms.allow_responses:
        rendered["allow_responses"] = True
    return {"user": user, "password": password, "permissions": rendered}


def render_account(users: list[tuple[str, Any, dict[str, str]]]) -> dict[str, Any]:
    """The `IIOE` account: JetStream on, every (user, password, role) with the permissions of `iioe.access`.

    Shared by the embedded server's configuration and the shipped deploy configs
    (`iioe_tools.deploy_config`), so both grant exactly the same subjects."""
    return {
        "jetstream": "enabled",
        "users": [render_user(name, password, permissions_of(name, role)) for name, password, role in users],
    }


class NatsAuth:
    """The users of one embedded server, and its configuration file."""

    def __init__(self, nats_dir: Path, *, host: str, port: int) -> None:
        self.dir = nats_dir
        self.host = host
        self.port = port

    @property
    def users_path(self) -> Path:
        return self.dir / "users.json"

    @property
    def config_path(self) -> Path:
        return self.dir / "nats.conf"

    @property
    def pid_path(self) -> Path:
        return self.dir / "nats-server.pid"

    def _users(self) -> dict[str, dict[str, Any]]:
        try:
            users: dict[str, dict[str, Any]] = json.loads(self.users_path.read_text())
            return users
        except FileNotFoundError:
            return {}

    def _save(self, users: dict[str, dict[str, Any]]) -> None:
        _write_private(self.users_path, json.dumps(users, indent=2, sort_keys=True))

    def _ensure(self, users: dict[str, dict[str, Any]], user: str, role: dict[str, str]) -> bool:
        if user in users:
            return False
        users[user] = {"password": secrets.token_urlsafe(24), "role": role}
        return True

    def ensure_platform_users(self) -> None:
        """Service, dashboard and operator users exist (created with random passwords on first start)."""
        users = self._users()
        changed = False
        for service in SERVICE_NAMES:
            changed |= self._ensure(users, service_user(service), {"kind": "service", "service": service})
        changed |= self._ensure(users, DASHBOARD_USER, {"kind": "dashboard"})
        changed |= self._ensure(users, OPERATOR_USER, {"kind": "operator"})
        if changed or not self.config_path.exists():
            self._save(users)
            self.write_config(users)

    def credentials(self, user: str) -> NatsCredentials:
        users = self._users()
        if user not in users:
            raise KeyError(user)
        perms = permissions_of(user, users[user]["role"])
        return NatsCredentials(user, users[user]["password"], perms.inbox_prefix)

    def add_partner(self, institution: str) -> tuple[NatsCredentials, bool]:
        """The partner user of an institution, created if missing; True when it was created."""
        user = partner_user(institution)
        users = self._users()
        created = self._ensure(users, user, {"kind": "partner", "institution": institution})
        if created:
            self._save(users)
            self.write_config(users)
            self.reload()
        return self.credentials(user), created

    def http_token(self, user: str) -> str:
        """The HTTP bearer token kept with a user (created on first use; only its hash leaves this file)."""
        users = self._users()
        token: str | None = users[user].get("http_token")
        if token is None:
            token = secrets.token_urlsafe(32)
            users[user]["http_token"] = token
            self._save(users)
        return token

    def revoke_partner(self, institution: str) -> bool:
        """Remove the partner user; the running server disconnects it on reload. False if there was none."""
        user = partner_user(institution)
        users = self._users()
        if users.pop(user, None) is None:
            return False
        self._save(users)
        self.write_config(users)
        self.reload()
        return True

    def write_config(self, users: dict[str, dict[str, Any]] | None = None) -> Path:
        users = self._users() if users is None else users
        config = {
            "server_name": "iioe-embedded",
            "host": self.host,
            "port": self.port,
            "pid_file": str(self.pid_path),
            "jetstream": {"store_dir": str(self.dir / "jetstream")},
            "ping_interval": "20s",
            "accounts": {
                ACCOUNT: render_account(
                    [(name, entry["password"], entry["role"]) for name, entry in sorted(users.items())]
                )
            },
        }
        _write_private(self.config_path, json.dumps(config, indent=2))
        return self.config_path

    def reload(self) -> bool:
        """Ask the running server to re-read its configuration; False when no server is running."""
        try:
            pid = int(self.pid_path.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return False
        return True
