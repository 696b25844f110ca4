"""Certification rebuilt from the event log on real NATS + PostgreSQL (#10 item 5): the schema is dropped, the
keys are imported from a backup, and a restart brings back the same credentials without issuing any again."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from services.certification.main import create_app
from tests.support.certification import (
    AI_COURSES,
    OPERATOR_TOKEN,
    TEST_KEK,
    complete,
    issued_on_stream,
    outbox_drained,
    register,
    settings_for,
)
from tests.support.helpers import Infra, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def run_cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "iioe_tools.cli.main",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_dropped_schema_is_rebuilt_from_the_log_with_identical_credentials(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    kept, revoked = f"edu-{ref}-a", f"edu-{ref}-b"
    settings = settings_for(infra.nats_url, database_url, f"{ref}-")
    async with running_app(create_app(settings)) as http:
        for educator in (kept, revoked):
            await register(nc, educator)
            for course in AI_COURSES:
                await complete(nc, educator, course, 90)

        async def both_issued() -> bool:
            return all([await issued_on_stream(nc, e) for e in (kept, revoked)])

        await eventually(both_issued, what="both CertificateIssued")
        old_kid = (await http.get("/.well-known/jwks.json")).json()["keys"][0]["kid"]
        cert_a = (await http.get(f"/v1/educators/{kept}/certificates", headers=AUTH)).json()["certificates"][0]
        cert_b = (await http.get(f"/v1/educators/{revoked}/certificates", headers=AUTH)).json()["certificates"][0]
        r = await http.post(
            f"/v1/certificates/{cert_b['certificate_id']}/revoke", json={"reason": "fraud"}, headers=AUTH
        )
        assert r.status_code == 200
        r = await http.post(
            f"/v1/certificates/{cert_a['certificate_id']}/recognitions",
            json={"receiving_institution": "num", "receiving_programme": "msc-education", "credits": 2},
            headers=AUTH,
        )
        assert r.status_code == 201
        assert (await http.post("/v1/keys/rotate", headers=AUTH)).status_code == 200
        progress = (
            await http.get(f"/v1/educators/{kept}/progress", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        ).json()
        await eventually(lambda: outbox_drained(http), what="outbox drained")

    env = {"IIOE_CERTIFICATION_KEY_ENCRYPTION_KEY": TEST_KEK, "IIOE_CERTIFICATION_KEY_BACKUP_PASSPHRASE": "pass"}
    backup = tmp_path / "keys.backup"
    code, out = await run_cli(
        env, "certification", "keys", f"--database-url={database_url}", "export", f"--out={backup}"
    )
    assert code == 0, out

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP SCHEMA certification CASCADE")
    finally:
        await conn.close()
    code, out = await run_cli(env, "certification", "keys", f"--database-url={database_url}", "import", str(backup))
    assert code == 0 and old_kid in out, out

    async with running_app(create_app(settings)) as http:
        again_a = (await http.get(f"/v1/certificates/{cert_a['certificate_id']}")).json()
        again_b = (await http.get(f"/v1/certificates/{cert_b['certificate_id']}")).json()
        assert again_a["credential"] == cert_a["credential"] and again_a["issued_at"] == cert_a["issued_at"]
        assert again_a["status"] == "active" and again_a["recognitions"][0]["credits"] == 2
        assert again_b["credential"] == cert_b["credential"] and again_b["status"] == "revoked"
        assert again_b["revocation"]["reason"] == "fraud"
        assert (
            await http.get(f"/v1/educators/{kept}/progress", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        ).json() == progress
        kids = [k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]]
        assert old_kid in kids and len(kids) == 2
        verdict = (await http.post("/v1/verify", json={"credential": cert_a["credential"]})).json()
        assert verdict["status"] == "valid", verdict

        # consuming resumes normally after the restore
        late = f"edu-{ref}-c"
        await register(nc, late)
        for course in AI_COURSES:
            await complete(nc, late, course, 95)
        await eventually(lambda: issued_on_stream(nc, late), what="a new certificate after the restore")
        await eventually(lambda: outbox_drained(http), what="outbox drained")

    for educator in (kept, revoked):
        assert len(await issued_on_stream(nc, educator)) == 1  # no second CertificateIssued
    assert len(await stream_messages(nc, "IIOE_EVENTS", "iioe.events.*.certificate_revoked.v1")) == 1
