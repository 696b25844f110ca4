"""A partner LMS written only from contract-v1: raw nats-py, no platform imports for the partner side.

It registers an educator through the real registration service (NATS request–reply), publishes
CourseCompleted CloudEvents, waits for CertificateIssued and verifies the credential with PyJWT
against the JWKS the certification service publishes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import jwt
import pytest
from nats.aio.client import Client as NATS

from iioe.testing import eventually, running_app
from services.certification.main import create_app as create_certification
from services.certification.testing import settings_for
from services.registration.main import create_app as create_registration
from services.registration.settings import RegistrationSettings

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
        "iioe.events.must.course_completed.v1",
        json.dumps(event).encode(),
        headers={"Nats-Msg-Id": event["id"], "Content-Type": "application/cloudevents+json"},
    )


async def test_partner_gets_a_verifiable_certificate(infra, database_url, nc, ref) -> None:  # type: ignore[no-untyped-def]
    registration = create_registration(
        RegistrationSettings(NATS_URL=infra.nats_url, DATABASE_URL=database_url, consumer_prefix=f"{ref}-")
    )
    certification = create_certification(settings_for(infra.nats_url, database_url, f"{ref}-"))
    async with running_app(registration), running_app(certification) as http:
        reply = await nc.request(
            "iioe.commands.must.register_educator",
            json.dumps({"full_name": "Батын Сарнай", "email": f"sarnai.{ref}@must.edu.mn", "language": "mn"}).encode(),
            timeout=10,
        )
        registered = json.loads(reply.data)
        assert registered["status"] == "registered", registered
        educator_id = registered["educator_id"]

        await partner_complete(nc, educator_id, "genai-fundamentals", 88)
        await partner_complete(nc, educator_id, "teaching-with-ai", 91.5)
        await partner_complete(nc, educator_id, "future-classroom", 80)

        received: list[dict] = []  # type: ignore[type-arg]

        async def collect(msg) -> None:  # type: ignore[no-untyped-def]
            body = json.loads(msg.data)
            if body["data"]["educator_id"] == educator_id:
                received.append(body)

        sub = await nc.jetstream().subscribe(
            "iioe.events.must.certificate_issued.v1", cb=collect, deliver_policy="all", ordered_consumer=True
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
