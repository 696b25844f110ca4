"""How the operator CLI reaches the platform: the NATS server and the operator's credentials.

`NATS_URL` (with `NATS_USER`/`NATS_PASSWORD`, `NATS_CREDS` or `NATS_TOKEN`) names an external
server. Otherwise the CLI talks to the embedded server of the platform that `iioe up` runs on
the same `IIOE_DATA_DIR`: its port (`IIOE_NATS_PORT`, else the one `iioe up` recorded) and the
operator user it generated.
"""

from __future__ import annotations

import os
from pathlib import Path

from iioe.access import OPERATOR_USER
from iioe.runtime.settings import DEFAULT_NATS_URL, NatsAuthOptions, ServiceSettings
from iioe_tools.nats_auth import NatsAuth


def data_dir() -> Path:
    return Path(os.environ.get("IIOE_DATA_DIR", ".iioe"))


def embedded_nats_port(directory: Path | None = None) -> int | None:
    """The port of the platform's embedded nats-server, as `iioe up` would choose it."""
    if os.environ.get("IIOE_NATS_PORT"):
        return int(os.environ["IIOE_NATS_PORT"])
    try:
        return int(((directory or data_dir()) / "nats.port").read_text().strip())
    except (OSError, ValueError):
        return None


def embedded_auth(directory: Path | None = None) -> NatsAuth | None:
    """The user store of the embedded server, if `iioe up` ever started one in this data dir."""
    directory = directory or data_dir()
    port = embedded_nats_port(directory)
    if port is None or not (directory / "nats" / "users.json").exists():
        return None
    return NatsAuth(directory / "nats", host="127.0.0.1", port=port)


def operator_connection(url: str | None = None) -> tuple[str, NatsAuthOptions | None]:
    """(server URL, credentials) for an operator command."""
    explicit = url or os.environ.get("NATS_URL")
    if explicit:
        return explicit, ServiceSettings().nats_auth()
    auth = embedded_auth()
    if auth is None:
        return DEFAULT_NATS_URL, None
    creds = auth.credentials(OPERATOR_USER)
    return f"nats://127.0.0.1:{auth.port}", NatsAuthOptions(user=creds.user, password=creds.password)


def operator_environment(directory: Path | None = None) -> dict[str, str]:
    """What a service's own CLI (`iioe analytics rebuild`, `iioe certification rotate-key`) needs to
    reach the platform of this data dir as the operator: NATS URL and user, and the database.

    Empty when `NATS_URL` / `DATABASE_URL` are set (an external platform) or no platform is here."""
    directory = directory or data_dir()
    env: dict[str, str] = {}
    if not os.environ.get("NATS_URL"):
        auth = embedded_auth(directory)
        if auth is not None:
            creds = auth.credentials(OPERATOR_USER)
            env.update(NATS_URL=f"nats://127.0.0.1:{auth.port}", NATS_USER=creds.user, NATS_PASSWORD=creds.password)
    if not os.environ.get("DATABASE_URL"):
        try:
            port = int((directory / "postgres.port").read_text().strip())
            env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{port}/iioe"
        except (OSError, ValueError):
            pass
    return env
