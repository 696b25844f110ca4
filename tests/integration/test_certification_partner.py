"""A partner LMS written only from contract-v1: raw nats-py, no platform imports for the partner side.

It registers an educator through the real registration service (NATS request–reply), publishes
CourseCompleted CloudEvents, waits for CertificateIssued and verifies the credential with PyJWT
against the JWKS the certification service publishes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from iioe.subjects import REGISTER_EDUCATOR, command_subject, event_subject
from services.certification.main import create_app as create_certification
from services.registration.main import create_app as create_registration
from services.registration.settings import RegistrationSettings
from tests.support.certification import settings_for
from tests.support.helpers import Infra, eventually, running_app

pytestmark = pytest.mark.integration


async def partner_complete(nc: NATS, educator_id: str, course_id: str, score: float) -> None:
    """Exactly what contract sections 1–3 ask of a partner: a structured CloudEvent, Nats-Msg-Id = id."""
    now = datetime.now(UTC).isoformat()
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:iioe:partner:must-lms",
        "type": "org.iioe.learning.course_completed.v1",
        "time": now,
        "subject": educator_id,
        "datacontenttype": "application/json",
        "lms_course_run": "2025-spring",  # unknown extension attribute: kept and ignored
        "data": {
            "educator_id": educator_id,
            "institution": "must",
            "course_id": course_id,
            "score": score,
            "completed_at": now,
            "language": "mn",
        },
    }
    await nc.jetstream().publish(
        event_subject("must", "course_completed"),
        json.dumps(event).encode(),
        headers={"Nats-Msg-Id": event["id"], "Content-Type": "application/cloudevents+json"},
    )


async def test_partner_gets_a_verifiable_certificate(infra: Infra, database_url: str, nc: NATS, ref: str) -> None:
    registration = create_registration(
        RegistrationSettings(NATS_URL=infra.nats_url, DATABASE_URL=database_url, consumer_prefix=f"{ref}-")
    )
    certification = create_certification(settings_for(infra.nats_url, database_url, f"{ref}-"))
    async with running_app(registration), running_app(certification) as http:
        reply = await nc.request(
            command_subject("must", REGISTER_EDUCATOR),
            json.dumps({"full_name": "Батын Сарнай", "email": f"sarnai.{ref}@must.edu.mn", "language": "mn"}).encode(),
            timeout=10,
        )
        registered = json.loads(reply.data)
        assert registered["status"] == "registered", registered
        educator_id = registered["educator_id"]

        await partner_complete(nc, educator_id, "genai-fundamentals", 88)
        await partner_complete(nc, educator_id, "teaching-with-ai", 91.5)
        await partner_complete(nc, educator_id, "future-classroom", 80)

        received: list[dict[str, Any]] = []

        async def collect(msg: Msg) -> None:
            body = json.loads(msg.data)
            if body["data"]["educator_id"] == educator_id:
                received.append(body)

        sub = await nc.jetstream().subscribe(
            event_subject("must", "certificate_issued"),
            cb=collect,
            deliver_policy=DeliverPolicy.ALL,
            ordered_consumer=True,
        )
        try:
            await eventually(lambda: _async(bool(received)), timeout=30, what="CertificateIssued for the partner")
        finally:
            await sub.unsubscribe()

        issued = received[0]
        assert issued["type"] == "org.iioe.certification.certificate_issued.v1"
        assert issued["data"]["programme_id"] == "ai-in-higher-education"
        jwks = (await http.get("/.well-known/jwks.json")).json()
        token = issued["data"]["credential"]
        header = jwt.get_unverified_header(token)
        key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
        claims = jwt.decode(token, jwt.PyJWK(key, algorithm="EdDSA"), algorithms=["EdDSA"])
        assert claims["sub"] == f"urn:iioe:educator:{educator_id}"
        assert claims["vc"]["credentialSubject"]["achievement"]["courseIds"] == [
            "genai-fundamentals",
            "teaching-with-ai",
            "future-classroom",
        ]
        assert f"sarnai.{ref}" not in token and "Сарнай" not in json.dumps(claims)
        status = (await http.get(f"/v1/certificates/{issued['data']['certificate_id']}")).json()["status"]
        assert status == "active"


async def _async(value: bool) -> bool:
    return value
