"""Certificate status over HTTP on real servers: suspend / reinstate / revoke with scoped operator tokens, the
events they emit (with the actor) on IIOE_EVENTS, the public status lists whose bits flip, and who may read
a person's progress and certificates (contract 8 and 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.tokens import TokenGrant, new_token, put_grant
from iioe.subjects import EVENTS_STREAM, event_filter
from services.certification.credentials import verify_signature, verify_status_list
from services.certification.main import create_app
from tests.support.certification import (
    AI_COURSES,
    OPERATOR_TOKEN,
    complete,
    issued_on_stream,
    outbox_drained,
    register,
    settings_for,
)
from tests.support.helpers import Infra, StoredMessage, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
ADMIN = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
BASE = "http://certification.test"


async def grant(nc: NATS, **fields: Any) -> dict[str, str]:
    """A token of our own in the platform's token bucket, as `iioe credentials` would create it."""
    token = new_token()
    await put_grant(nc.jetstream(), token, TokenGrant(**fields))
    return {"Authorization": f"Bearer {token}"}


async def certified(nc: NATS, educator: str) -> dict[str, Any]:
    await register(nc, educator)
    for course in AI_COURSES:
        await complete(nc, educator, course, 95)
    issued = await eventually(lambda: issued_on_stream(nc, educator), timeout=30, what="CertificateIssued")
    data: dict[str, Any] = issued[0].json()["data"]
    return data


async def status_events(nc: NATS, certificate_id: str) -> list[StoredMessage]:
    names = ("certificate_suspended", "certificate_reinstated", "certificate_revoked")
    found: list[StoredMessage] = []
    for name in names:
        found += await stream_messages(nc, EVENTS_STREAM, event_filter(name))
    mine = [m for m in found if m.json()["data"]["certificate_id"] == certificate_id]
    return sorted(mine, key=lambda m: m.seq)


async def bits(http: httpx.AsyncClient, credential_status: list[dict[str, str]]) -> dict[str, bool]:
    """Fetch each status list as a verifier would (public URL → signed list → decoded bit)."""
    jwks = (await http.get("/.well-known/jwks.json")).json()
    out: dict[str, bool] = {}
    for entry in credential_status:
        assert entry["statusListCredential"].startswith(f"{BASE}/status/")
        response = await http.get(entry["statusListCredential"].removeprefix(BASE))
        assert response.status_code == 200 and response.headers["content-type"].startswith("application/vc+jwt")
        listed = verify_status_list(response.text, jwks)
        assert listed.purpose == entry["statusPurpose"] and len(listed.bits) * 8 >= 131_072
        out[entry["statusPurpose"]] = listed.is_set(int(entry["statusListIndex"]))
    return out


async def test_suspend_reinstate_revoke_over_http_emit_events_with_the_actor_and_flip_the_status_lists(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    app = create_app(settings_for(infra.nats_url, database_url, f"{ref}-", public_url=BASE))
    revoker = await grant(nc, kind="operator", actor=f"ops-{ref}", scopes=frozenset({"revoke"}))
    keys_only = await grant(nc, kind="operator", actor="keys-only", scopes=frozenset({"keys"}))
    async with running_app(app) as http:
        data = await certified(nc, f"edu-{ref}")
        cert_id = data["certificate_id"]
        base = f"/v1/certificates/{cert_id}"
        claims = (await http.post("/v1/verify", json={"credential": data["credential"]})).json()
        assert claims["status"] == "valid"
        cert = (await http.get(base)).json()
        assert cert["status"] == "active" and cert["verification_url"] == f"{BASE}/verify/{cert_id}"

        jwks = (await http.get("/.well-known/jwks.json")).json()
        entries = verify_signature(data["credential"], jwks)[2]["vc"]["credentialStatus"]
        assert await bits(http, entries) == {"revocation": False, "suspension": False}

        # who may act
        assert (await http.post(f"{base}/suspend")).status_code == 401
        narrow = await http.post(f"{base}/suspend", headers=keys_only)
        assert narrow.status_code == 403 and narrow.json()["error"]["code"] == "forbidden"

        suspended = await http.post(f"{base}/suspend", json={"reason": "under inquiry"}, headers=revoker)
        assert suspended.status_code == 200, suspended.text
        assert suspended.json()["status"] == "suspended" and suspended.json()["reason"] == "under inquiry"
        assert (await http.post(f"{base}/suspend", headers=revoker)).json() == suspended.json()  # idempotent
        cert = (await http.get(base)).json()
        assert cert["status"] == "suspended" and cert["suspension"]["reason"] == "under inquiry"
        assert (await http.post("/v1/verify", json={"credential": data["credential"]})).json()["status"] == "suspended"
        assert await bits(http, entries) == {"revocation": False, "suspension": True}

        reinstated = await http.post(f"{base}/reinstate", headers=revoker)  # no body at all
        assert reinstated.status_code == 200 and reinstated.json()["status"] == "active"
        assert (await http.post(f"{base}/reinstate", headers=revoker)).json() == reinstated.json()
        assert (await http.get(base)).json()["status"] == "active"
        assert await bits(http, entries) == {"revocation": False, "suspension": False}

        await http.post(f"{base}/suspend", headers=revoker)
        revoked = await http.post(f"{base}/revoke", json={"reason": "fraud"}, headers=revoker)
        assert revoked.status_code == 200 and revoked.json()["reason"] == "fraud"
        again = await http.post(f"{base}/revoke", json={"reason": "other"}, headers=ADMIN)
        assert again.json() == revoked.json()
        for action in ("suspend", "reinstate"):
            refused = await http.post(f"{base}/{action}", headers=revoker)
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "certificate_revoked"
        cert = (await http.get(base)).json()
        assert cert["status"] == "revoked" and cert["revocation"]["reason"] == "fraud" and cert["suspension"] is None
        assert await bits(http, entries) == {"revocation": True, "suspension": False}
        missing = await http.post("/v1/certificates/cert-nope/suspend", headers=revoker)
        assert missing.status_code == 404

        await eventually(lambda: outbox_drained(http), what="outbox drained")
        events = await eventually(lambda: _at_least(status_events(nc, cert_id), 4), what="status events on IIOE_EVENTS")
        bodies = [m.json() for m in events]
        assert [b["type"].split(".")[-2] for b in bodies] == [
            "certificate_suspended",
            "certificate_reinstated",
            "certificate_suspended",
            "certificate_revoked",
        ]
        assert {b["actor"] for b in bodies} == {f"ops-{ref}"}
        assert all(b["subject"] == f"edu-{ref}" and b["data"]["institution"] == "must" for b in bodies)
        assert events[0].subject == "iioe.events.must.certificate_suspended.v1"
        assert bodies[0]["data"]["reason"] == "under inquiry" and bodies[1]["data"].get("reason") is None
        assert [m.headers["Nats-Msg-Id"] for m in events] == [b["id"] for b in bodies]


async def _at_least(found: Any, n: int) -> list[StoredMessage]:
    messages: list[StoredMessage] = await found
    return messages if len(messages) >= n else []


async def test_reinstating_an_active_certificate_is_a_409(infra: Infra, database_url: str, nc: NATS, ref: str) -> None:
    async with running_app(create_app(settings_for(infra.nats_url, database_url, f"{ref}-"))) as http:
        cert_id = (await certified(nc, f"edu-{ref}"))["certificate_id"]
        refused = await http.post(f"/v1/certificates/{cert_id}/reinstate", json={"reason": "x"}, headers=ADMIN)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "certificate_not_suspended"


async def test_status_lists_are_public_cacheable_and_answer_304_to_their_etag(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    async with running_app(create_app(settings_for(infra.nats_url, database_url, f"{ref}-"))) as http:
        cert_id = (await certified(nc, f"edu-{ref}"))["certificate_id"]
        first = await http.get("/status/suspension-1")
        assert first.status_code == 200
        assert "max-age=60" in first.headers["cache-control"] and first.headers["etag"]
        same = await http.get("/status/suspension-1", headers={"If-None-Match": first.headers["etag"]})
        assert same.status_code == 304 and same.content == b""
        await http.post(f"/v1/certificates/{cert_id}/suspend", headers=ADMIN)
        changed = await http.get("/status/suspension-1", headers={"If-None-Match": first.headers["etag"]})
        assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
        unknown = await http.get("/status/revocation-404")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "status_list_not_found"


async def test_progress_and_certificate_lists_need_a_token_of_the_educators_institution(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    must = await grant(nc, kind="institution", actor="partner-must", institution="must")
    num = await grant(nc, kind="institution", actor="partner-num", institution="num")
    async with running_app(create_app(settings_for(infra.nats_url, database_url, f"{ref}-"))) as http:
        educator = f"edu-{ref}"
        cert_id = (await certified(nc, educator))["certificate_id"]
        for path in (f"/v1/educators/{educator}/progress", f"/v1/educators/{educator}/certificates"):
            assert (await http.get(path)).status_code == 401
            assert (await http.get(path, headers=num)).status_code == 403
            assert (await http.get(path, headers=must)).status_code == 200
            assert (await http.get(path, headers=ADMIN)).status_code == 200
        unknown = "/v1/educators/edu-nobody/progress"
        assert (await http.get(unknown, headers=must)).status_code == 403  # existence is not revealed
        assert (await http.get(unknown, headers=ADMIN)).status_code == 404
        # what stays public: status, JWKS, verification
        assert (await http.get(f"/v1/certificates/{cert_id}")).status_code == 200
        assert (await http.get("/.well-known/jwks.json")).status_code == 200
        assert (await http.post("/v1/verify", json={"credential": "a.b.c"})).status_code == 200
