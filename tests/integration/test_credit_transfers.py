"""Credit transfer over HTTP and NATS (#12 item 3): the educator's institution requests, only the receiving
institution decides, the events reach IIOE_EVENTS with the acting token's `actor`."""

from __future__ import annotations

from typing import Any

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.tokens import TokenGrant, put_grant
from iioe.subjects import EVENTS_STREAM, event_filter, event_subject
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
from tests.support.helpers import Infra, eventually, running_app, stream_messages

pytestmark = pytest.mark.integration
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


async def institution_tokens(nc: NATS, ref: str, *institutions: str) -> dict[str, dict[str, str]]:
    headers = {}
    for institution in institutions:
        token = f"{institution}-{ref}-token"
        grant = TokenGrant(kind="institution", actor=f"partner-{institution}", institution=institution)
        await put_grant(nc.jetstream(), token, grant)
        headers[institution] = {"Authorization": f"Bearer {token}"}
    return headers


async def test_a_transfer_is_requested_decided_by_the_receiver_only_and_recognised(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    tokens = await institution_tokens(nc, ref, "must", "num", "msue")
    educator = f"edu-{ref}"
    async with running_app(create_app(settings_for(infra.nats_url, database_url, f"{ref}-"))) as http:
        await register(nc, educator)
        for course in AI_COURSES:
            await complete(nc, educator, course, 90)
        issued = await eventually(lambda: issued_on_stream(nc, educator), what="CertificateIssued")
        certificate_id = issued[0].json()["data"]["certificate_id"]
        body: dict[str, Any] = {
            "educator_id": educator,
            "certificate_id": certificate_id,
            "receiving_institution": "num",
            "receiving_programme": "MSc Education",
        }

        assert (await http.post("/v1/credit-transfers", json=body)).status_code == 401
        assert (await http.post("/v1/credit-transfers", json=body, headers=tokens["num"])).status_code == 403
        created = await http.post("/v1/credit-transfers", json=body, headers=tokens["must"])
        assert created.status_code == 201, created.text
        transfer = created.json()
        assert transfer["status"] == "requested" and transfer["institution"] == "must"
        again = await http.post("/v1/credit-transfers", json=body, headers=tokens["must"])
        assert again.status_code == 200 and again.json() == transfer
        second = await http.post(
            "/v1/credit-transfers", json={**body, "receiving_institution": "msue"}, headers=OPERATOR
        )
        assert second.status_code == 201

        decision_url = f"/v1/credit-transfers/{transfer['request_id']}/decision"
        accept = {"decision": "accepted", "credits": 2}
        for who in ("must", "msue"):  # neither the educator's institution nor a third one may decide
            response = await http.post(decision_url, json=accept, headers=tokens[who])
            assert response.status_code == 403, response.text
        decided = await http.post(decision_url, json=accept, headers=tokens["num"])
        assert decided.status_code == 201 and decided.json()["status"] == "accepted", decided.text
        assert (await http.post(decision_url, json=accept, headers=tokens["num"])).status_code == 200
        final = await http.post(decision_url, json={"decision": "rejected", "reason": "no"}, headers=tokens["num"])
        assert final.status_code == 409 and final.json()["error"]["code"] == "decision_final"

        too_much = await http.post(
            f"/v1/credit-transfers/{second.json()['request_id']}/decision", json={"decision": "accepted", "credits": 2},
            headers=tokens["msue"],
        )  # fmt: skip
        assert too_much.status_code == 409 and too_much.json()["error"]["code"] == "credits_exceed_certificate"

        mine = (await http.get("/v1/credit-transfers", headers=tokens["num"])).json()
        assert [t["request_id"] for t in mine["transfers"]] == [transfer["request_id"]]
        assert (await http.get("/v1/credit-transfers?institution=must", headers=tokens["num"])).status_code == 403
        all_must = (await http.get("/v1/credit-transfers?institution=must", headers=OPERATOR)).json()
        assert len(all_must["transfers"]) == 2
        cert = (await http.get(f"/v1/certificates/{certificate_id}")).json()
        assert [r["credits"] for r in cert["recognitions"]] == [2]
        await eventually(lambda: outbox_drained(http), what="outbox drained")

    requested = await stream_messages(nc, EVENTS_STREAM, event_filter("credit_transfer_requested"))
    decided_events = await stream_messages(nc, EVENTS_STREAM, event_filter("credit_transfer_decided"))
    recognized = await stream_messages(nc, EVENTS_STREAM, event_filter("credit_recognized"))
    assert len(requested) == 2 and len(decided_events) == 1 and len(recognized) == 1
    event = decided_events[0].json()
    assert decided_events[0].subject == event_subject("must", "credit_transfer_decided")
    assert event["type"] == "org.iioe.recognition.credit_transfer_decided.v1" and event["actor"] == "partner-num"
    assert event["data"]["decision"] == "accepted" and event["data"]["credits"] == 2
    assert {m.json()["actor"] for m in requested} == {"partner-must", "operator"}
    assert recognized[0].json()["data"]["receiving_institution"] == "num"
