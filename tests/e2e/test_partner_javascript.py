"""A partner written in JavaScript (the `nats` npm package) onboarded as contract §8 says.

A real nats-server with the generated accounts, the registration service with its own
credentials, and `tests/js/partner.mjs` fed the JSON that `iioe credentials partner` prints.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from iioe.access import OPERATOR_USER, partner_user, service_user
from iioe.runtime.nats import connect, provision_streams
from iioe.runtime.settings import NatsAuthOptions
from iioe.subjects import EVENTS_STREAM
from iioe_tools.embedded import EmbeddedNats, free_port
from iioe_tools.nats_auth import NatsAuth
from services.registration.main import create_app
from services.registration.settings import RegistrationSettings
from tests.support.helpers import running_app

pytestmark = pytest.mark.e2e
JS_DIR = Path(__file__).resolve().parents[1] / "js"


def node_partner() -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs npm): the JavaScript partner cannot run")
    if not (JS_DIR / "node_modules" / "nats").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True, capture_output=True, timeout=300)
    return [node, str(JS_DIR / "partner.mjs")]


async def test_a_javascript_partner_registers_and_reports_completions_for_its_institution_only(
    database_url: str, tmp_path: Path
) -> None:
    command = node_partner()
    port = free_port()
    auth = NatsAuth(tmp_path / "nats", host="127.0.0.1", port=port)
    auth.ensure_platform_users()
    partner, _ = auth.add_partner("must")
    server = EmbeddedNats(tmp_path / "nats", port, config=auth.config_path).start()
    try:
        operator = auth.credentials(OPERATOR_USER)
        op_auth = NatsAuthOptions(user=operator.user, password=operator.password)
        nc = await connect(server.url, "test", auth=op_auth)
        js = nc.jetstream()
        await provision_streams(js)
        svc = auth.credentials(service_user("registration"))
        settings = RegistrationSettings(
            NATS_URL=server.url,
            DATABASE_URL=database_url,
            NATS_USER=svc.user,
            NATS_PASSWORD=svc.password,
            NATS_INBOX_PREFIX=svc.inbox_prefix,
        )
        creds = {
            "institution": "must",
            "nats_url": server.url,
            "user": partner.user,
            "password": partner.password,
            "inbox_prefix": partner.inbox_prefix,
        }
        async with running_app(create_app(settings)):
            done = await asyncio.to_thread(
                subprocess.run, command, input=json.dumps(creds), capture_output=True, text=True, timeout=60
            )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["reply"]["status"] == "registered"
        assert result["acks"] == [{"stream": EVENTS_STREAM, "duplicate": False}] * 3
        assert result["forbidden"] == "PERMISSIONS_VIOLATION"  # nats.js's code for the server's refusal
        state = (await js.stream_info(EVENTS_STREAM)).state
        subjects = {
            (await js.get_msg(EVENTS_STREAM, seq)).subject for seq in range(state.first_seq, state.last_seq + 1)
        }
        assert "iioe.events.other-inst.course_completed.v1" not in subjects
        assert "iioe.events.must.course_completed.v1" in subjects
        await nc.close()
        assert partner.user == partner_user("must")
    finally:
        server.stop()
