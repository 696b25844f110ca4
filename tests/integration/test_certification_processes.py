"""Certification as OS processes: two replicas on one durable, real HTTP for JWKS, the `iioe verify` CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from nats.aio.client import Client as NATS

from iioe.subjects import EVENTS_STREAM, event_filter
from iioe_tools.embedded import free_port
from tests.support.certification import AI_COURSES, OPERATOR_TOKEN, complete, register
from tests.support.helpers import Infra, ServiceProcess, eventually, stream_messages

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
ISSUER = "urn:iioe:issuer:unesco-ichei"


def replica(infra: Infra, database_url: str, prefix: str, log: Path) -> ServiceProcess:
    env = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "IIOE_CERTIFICATION_CONSUMER_PREFIX": prefix,
        "IIOE_CERTIFICATION_API_TOKEN": OPERATOR_TOKEN,
        "IIOE_CERTIFICATION_OUTBOX_POLL_SECONDS": "0.1",
        "IIOE_CERTIFICATION_ACK_WAIT_SECONDS": "5",
        # small batches so the two replicas really interleave, often on the same educator
        "IIOE_CERTIFICATION_CONSUMER_BATCH_SIZE": "2",
        "LOG_LEVEL": "INFO",
    }
    return ServiceProcess("certification", env, free_port(), log)


async def run_cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "iioe_tools.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def pyjwt_verify(token: str, jwks_url: str) -> dict[str, Any]:
    """An independent JOSE library (PyJWT) fetching the JWKS over HTTP: what a receiving university runs."""
    key = jwt.PyJWKClient(jwks_url, cache_jwk_set=False).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["EdDSA"], issuer=ISSUER)
    return claims


def tamper(token: str) -> str:
    """Change one byte of the signed payload (base64url alphabet, so it still parses as a JWS)."""
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    swapped = "A" if payload[middle] != "A" else "B"
    return ".".join([header, payload[:middle] + swapped + payload[middle + 1 :], signature])


async def test_two_replicas_issue_one_certificate_per_educator(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    replicas = [replica(infra, database_url, f"{ref}-", tmp_path / f"replica-{i}.log") for i in range(2)]
    try:
        for r in replicas:
            r.start()
        await asyncio.gather(*(r.wait_healthy() for r in replicas))
        educators = [f"edu-{ref}-{i:02d}" for i in range(30)]
        for i, educator in enumerate(educators):
            institution = ("must", "num", "msue")[i % 3]
            await register(nc, educator, institution=institution)
            for course in AI_COURSES:
                await complete(nc, educator, course, 80 + i % 20, institution=institution)

        async def issued() -> Counter[str]:
            msgs = await stream_messages(nc, EVENTS_STREAM, event_filter("certificate_issued"))
            counts = Counter(m.json()["data"]["educator_id"] for m in msgs)
            return Counter({e: counts[e] for e in educators if counts[e]})

        async def all_issued() -> bool:
            return len(await issued()) == len(educators)

        async def drained() -> bool:
            async with httpx.AsyncClient() as client:
                bodies = [(await client.get(f"{r.base_url}/healthz")).json() for r in replicas]
            return all(b["outbox_pending"] == 0 for b in bodies)

        await eventually(all_issued, timeout=90, what="a certificate for each of the 30 educators")
        await eventually(drained, what="both outboxes drained")
        assert set((await issued()).values()) == {1}

        async with httpx.AsyncClient() as client:
            health = [(await client.get(f"{r.base_url}/healthz")).json() for r in replicas]
            processed = [sum(c["processed"] for c in h["consumers"].values()) for h in health]
            assert all(n > 0 for n in processed), f"both replicas should have consumed: {processed}"
            jwks_a = (await client.get(f"{replicas[0].base_url}/.well-known/jwks.json")).json()
            jwks_b = (await client.get(f"{replicas[1].base_url}/.well-known/jwks.json")).json()
            assert jwks_a == jwks_b and len(jwks_a["keys"]) == 1, "replicas started together share one key"
            for educator in educators[:3]:
                certs = (
                    await client.get(f"{replicas[1].base_url}/v1/educators/{educator}/certificates", headers=AUTH)
                ).json()
                assert len(certs["certificates"]) == 1
    finally:
        for r in replicas:
            r.stop()


async def test_credential_verifies_with_pyjwt_and_the_cli_and_survives_key_rotation(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    service = replica(infra, database_url, f"{ref}-", tmp_path / "certification.log")
    educator = f"edu-{ref}"
    try:
        service.start()
        await service.wait_healthy()
        await register(nc, educator, language="mn")
        for course in AI_COURSES:
            await complete(nc, educator, course, 90)

        async def certificate() -> dict[str, Any]:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"{service.base_url}/v1/educators/{educator}/certificates", headers=AUTH)
            certificates = response.json()["certificates"] if response.status_code == 200 else []
            return certificates[0] if certificates else {}  # an empty list until it is issued

        cert = await eventually(certificate, timeout=30, what="the certificate")
        token, jwks_url = cert["credential"], f"{service.base_url}/.well-known/jwks.json"

        claims = await asyncio.to_thread(pyjwt_verify, token, jwks_url)
        assert claims["sub"] == f"urn:iioe:educator:{educator}"
        assert claims["vc"]["credentialSubject"]["achievement"]["programmeId"] == "ai-in-higher-education"
        assert claims["vc"]["credentialSubject"]["creditsEarned"] == 3
        assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
        with pytest.raises(jwt.PyJWTError):
            await asyncio.to_thread(pyjwt_verify, tamper(token), jwks_url)

        url = f"--url={service.base_url}"
        code, out = await run_cli("verify", token, url)
        assert code == 0, out
        assert educator in out and "ai-in-higher-education" in out and "active" in out
        code, out = await run_cli("verify", tamper(token), url)
        assert code == 1 and "INVALID" in out

        event_file = tmp_path / "issued.json"
        event_file.write_text(json.dumps({"data": {"credential": token}}))
        jwks_file = tmp_path / "jwks.json"
        async with httpx.AsyncClient() as client:
            jwks_file.write_text((await client.get(jwks_url)).text)
        code, out = await run_cli("verify", str(event_file), f"--jwks={jwks_file}")
        assert code == 0 and "status not checked (offline)" in out, out

        code, out = await run_cli("certification", "rotate-key", f"--database-url={database_url}")
        assert code == 0, out
        async with httpx.AsyncClient() as client:
            rotated = await client.post(f"{service.base_url}/v1/keys/rotate", headers=AUTH)
            assert rotated.status_code == 200 and len(rotated.json()["kids"]) == 3
            assert (await client.post(f"{service.base_url}/v1/keys/rotate")).status_code == 401
            jwks = (await client.get(jwks_url)).json()
            assert len(jwks["keys"]) == 3 and all("d" not in k for k in jwks["keys"])
        claims = await asyncio.to_thread(pyjwt_verify, token, jwks_url)  # old credential, retired key
        assert claims["jti"] == f"urn:iioe:certificate:{cert['certificate_id']}"

        # suspension: seen online, and offline from status list files saved from the credential's URLs
        status_urls = [e["statusListCredential"] for e in claims["vc"]["credentialStatus"]]
        assert [u.rsplit("/", 1)[-1] for u in status_urls] == ["revocation-1", "suspension-1"]
        certificate_url = f"{service.base_url}/v1/certificates/{cert['certificate_id']}"
        async with httpx.AsyncClient() as client:
            suspended = await client.post(f"{certificate_url}/suspend", json={"reason": "inquiry"}, headers=AUTH)
            assert suspended.status_code == 200
            jwks_file.write_text((await client.get(jwks_url)).text)  # lists are signed with the current key
            lists = []
            for n, status_url in enumerate(status_urls):
                lists.append(tmp_path / f"list-{n}.jwt")
                lists[-1].write_text((await client.get(status_url)).text)
        code, out = await run_cli("verify", token, url)
        assert code == 1 and "SUSPENDED" in out and "inquiry" in out, out
        offline = [f"--status-list={path}" for path in lists]
        code, out = await run_cli("verify", str(event_file), f"--jwks={jwks_file}", *offline)
        assert code == 1 and "SUSPENDED (status list)" in out, out
        code, out = await run_cli("verify", token, f"--jwks={jwks_url}", "--offline", f"--status-list={status_urls[1]}")
        assert code == 1 and "suspension: SET" in out, out
        async with httpx.AsyncClient() as client:
            assert (await client.post(f"{certificate_url}/reinstate", headers=AUTH)).status_code == 200
        code, out = await run_cli("verify", token, f"--jwks={jwks_url}", "--offline", f"--status-list={status_urls[1]}")
        assert code == 0 and "suspension: clear" in out, out

        async with httpx.AsyncClient() as client:
            revoked = await client.post(
                f"{service.base_url}/v1/certificates/{cert['certificate_id']}/revoke",
                json={"reason": "issued in error"},
                headers=AUTH,
            )
            assert revoked.status_code == 200
        code, out = await run_cli("verify", token, url)
        assert code == 1 and "REVOKED" in out and "issued in error" in out
    finally:
        service.stop()
