"""The Faculty AI Portfolio on real servers: portfolio events published as a partner would (NATS JetStream) build
the read model; the portfolio is read over HTTP with institution and operator tokens; a share link serves a
Verifiable Presentation whose signature checks out against the JWKS; switching the share off makes it 410."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NATS

from iioe.subjects import event_subject
from services.certification.credentials import educator_urn, verify_signature
from services.certification.main import create_app
from tests.integration.test_certification_status import ADMIN, certified, grant
from tests.support.certification import cloud_event, publish, settings_for
from tests.support.helpers import Infra, eventually, running_app

pytestmark = pytest.mark.integration
BASE = "http://certification.test"
ENTRY_TYPE = "org.iioe.portfolio.entry_added.v1"
REPORT_TYPE = "org.iioe.portfolio.practice_integration_reported.v1"


async def add_entry(nc: NATS, educator: str, entry_id: str, title: str, added_on: str) -> dict[str, Any]:
    data = {
        "entry_id": entry_id,
        "educator_id": educator,
        "institution": "must",
        "kind": "lesson_plan",
        "title": title,
        "link": f"https://lms.must.test/portfolio/{entry_id}",
        "added_on": added_on,
    }
    event = cloud_event(ENTRY_TYPE, data)
    await publish(nc, event_subject("must", "portfolio_entry_added"), event)
    return event


async def report(nc: NATS, educator: str, integrates_ai: bool, reported_on: str) -> dict[str, Any]:
    data = {
        "educator_id": educator,
        "institution": "must",
        "integrates_ai": integrates_ai,
        "disciplines": ["mechanical engineering"],
        "reported_on": reported_on,
    }
    event = cloud_event(REPORT_TYPE, data)
    await publish(nc, event_subject("must", "practice_integration_reported"), event)
    return event


async def test_portfolio_events_build_a_portfolio_that_is_read_with_tokens_shared_signed_and_switched_off(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    must = await grant(nc, kind="institution", actor="partner-must", institution="must")
    num = await grant(nc, kind="institution", actor="partner-num", institution="num")
    app = create_app(settings_for(infra.nats_url, database_url, f"{ref}-", public_url=BASE))
    educator = f"edu-{ref}"
    path = f"/v1/educators/{educator}/portfolio"
    async with running_app(app, base_url=BASE) as http:
        issued = await certified(nc, educator)
        await add_entry(nc, educator, "e-1", "Prompting lab for thermodynamics", "2025-04-02")
        await add_entry(nc, educator, "e-2", "Reflection on AI feedback", "2025-05-10")
        first_report = await report(nc, educator, True, "2025-05-11")
        await publish(nc, event_subject("must", "practice_integration_reported"), first_report, msg_id=f"again-{ref}")

        async def complete_portfolio() -> dict[str, Any]:
            response = await http.get(path, headers=must)
            body: dict[str, Any] = response.json() if response.status_code == 200 else {}
            return body if len(body.get("entries", [])) == 2 and body.get("practice_reports") else {}

        portfolio = await eventually(complete_portfolio, timeout=30, what="both entries and the report")
        assert [e["entry_id"] for e in portfolio["entries"]] == ["e-2", "e-1"]
        assert len(portfolio["practice_reports"]) == 1  # the redelivered report (another Nats-Msg-Id) counts once
        assert portfolio["integrates_ai"] is True and portfolio["registered"] is True
        [certificate] = portfolio["certificates"]
        assert certificate["certificate_id"] == issued["certificate_id"] and certificate["status"] == "active"
        assert any(p["status"] == "certified" for p in portfolio["progress"]["programmes"])
        assert portfolio["share"] is None

        # who may read and share
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers=num)).status_code == 403
        assert (await http.get(path, headers=ADMIN)).status_code == 200
        assert (await http.get("/v1/educators/edu-nobody/portfolio", headers=must)).status_code == 403
        assert (await http.get("/v1/educators/edu-nobody/portfolio", headers=ADMIN)).status_code == 404
        assert (await http.post(f"{path}/share", headers=num)).status_code == 403
        assert (await http.post(f"{path}/share")).status_code == 401

        shared = await http.post(f"{path}/share", headers=must)
        assert shared.status_code == 201, shared.text
        share = shared.json()
        again = await http.post(f"{path}/share", headers=ADMIN)
        assert again.status_code == 200 and again.json()["share_id"] == share["share_id"]
        assert len(share["share_id"]) >= 32 and share["url"] == f"{BASE}/portfolio/{share['share_id']}"
        assert (await http.get(path, headers=must)).json()["share"]["share_id"] == share["share_id"]

        # the public link: a presentation signed by the service, verifiable with the JWKS alone
        bundle_response = await http.get(share["json_url"])
        assert bundle_response.status_code == 200 and bundle_response.headers["cache-control"] == "no-store"
        bundle = bundle_response.json()
        jwks = (await http.get("/.well-known/jwks.json")).json()
        _, header, claims = verify_signature(bundle["presentation"], jwks)
        assert header["alg"] == "EdDSA"
        vp = claims["vp"]
        assert vp["type"][0] == "VerifiablePresentation" and vp["holder"] == educator_urn(educator)
        assert vp["verifiableCredential"] == [issued["credential"]]
        assert (
            verify_signature(vp["verifiableCredential"][0], jwks)[2]["vc"]["certificateId"] == issued["certificate_id"]
        )
        assert [e["title"] for e in vp["portfolio"]["entries"]] == [
            "Reflection on AI feedback",
            "Prompting lab for thermodynamics",
        ]
        raw = await http.get(share["jwt_url"])
        assert raw.headers["content-type"].startswith("application/vp+jwt")
        assert verify_signature(raw.text, jwks)[2]["vp"]["holder"] == educator_urn(educator)

        page = await http.get(share["url"])
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "Prompting lab for thermodynamics" in page.text and jwks["keys"][0]["x"] in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        as_json = await http.get(share["url"], headers={"Accept": "application/json"})
        assert as_json.json()["share_id"] == share["share_id"]

        # switched off: gone for good; a new share is a new link
        assert (await http.delete(f"{path}/share", headers=num)).status_code == 403
        assert (await http.delete(f"{path}/share", headers=must)).status_code == 204
        for url in (share["url"], share["json_url"], share["jwt_url"]):
            gone = await http.get(url)
            assert gone.status_code == 410 and gone.json()["error"]["code"] == "portfolio_share_revoked"
        assert (await http.get(f"{BASE}/portfolio/not-a-share")).status_code == 404
        assert (await http.get(path, headers=must)).json()["share"] is None
        renewed = (await http.post(f"{path}/share", headers=must)).json()
        assert renewed["share_id"] != share["share_id"]
        assert (await http.get(share["url"])).status_code == 410
