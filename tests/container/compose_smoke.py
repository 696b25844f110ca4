"""Smoke test of a running compose deployment (deploy/scripts/compose-test.sh runs it).

Registers one educator over HTTP, publishes the three CourseCompleted events of the
`ai-in-higher-education` programme (score >= 80) as a partner LMS would, and waits for the
certificate: on the certification API (status active) and in the analytics summary.

    python tests/container/compose_smoke.py --nats-url ... --registration-url ... \
        --certification-url ... --analytics-url ... [--token ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from iioe.runtime.nats import connect

COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")
INSTITUTION = "must"


def course_completed(educator_id: str, course_id: str, score: float) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "specversion": "1.0",
        "id": f"smoke-{secrets.token_hex(8)}",
        "source": f"urn:iioe:partner:{INSTITUTION}-lms",
        "type": "org.iioe.learning.course_completed.v1",
        "time": now,
        "subject": educator_id,
        "datacontenttype": "application/json",
        "data": {
            "educator_id": educator_id,
            "institution": INSTITUTION,
            "course_id": course_id,
            "score": score,
            "completed_at": now,
        },
    }


async def poll(what: str, probe: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.5)
    raise SystemExit(f"compose smoke: FAILED: no {what} after {timeout:g} s")


async def smoke(args: argparse.Namespace) -> None:
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        analytics_before = (await http.get(f"{args.analytics_url}/v1/analytics/summary")).json()
        email = f"smoke-{secrets.token_hex(4)}@example.org"
        reply = await http.post(
            f"{args.registration_url}/v1/educators",
            json={"institution": INSTITUTION, "full_name": "Smoke Test", "email": email, "language": "en"},
        )
        assert reply.status_code == 201, f"register: {reply.status_code} {reply.text}"
        educator_id = reply.json()["educator_id"]
        print(f"compose smoke: registered educator {educator_id} over HTTP")

        nc = await connect(args.nats_url, "compose-smoke", connect_attempts=5)
        try:
            js = nc.jetstream()
            for course, score in zip(COURSES, (91, 85, 80), strict=True):
                event = course_completed(educator_id, course, score)
                ack = await js.publish(
                    f"iioe.events.{INSTITUTION}.course_completed.v1",
                    json.dumps(event).encode(),
                    headers={"Nats-Msg-Id": event["id"], "Content-Type": "application/cloudevents+json"},
                )
                assert ack.stream == "IIOE_EVENTS", ack
            print("compose smoke: published 3 CourseCompleted events")
        finally:
            await nc.close()

        async def certificates() -> list[dict[str, Any]]:
            r = await http.get(f"{args.certification_url}/v1/educators/{educator_id}/certificates")
            return list(r.json().get("certificates", [])) if r.status_code == 200 else []

        certs = await poll("certificate", certificates, args.timeout)
        assert len(certs) == 1, certs
        cert_id = certs[0]["certificate_id"]
        status = (await http.get(f"{args.certification_url}/v1/certificates/{cert_id}")).json()["status"]
        assert status == "active", status
        print(f"compose smoke: certificate {cert_id} issued, status {status}")

        async def counted() -> bool:
            summary = (await http.get(f"{args.analytics_url}/v1/analytics/summary")).json()
            return bool(summary["certificates_issued"] >= analytics_before["certificates_issued"] + 1)

        await poll("certificate in the analytics summary", counted, args.timeout)
        print("compose smoke: analytics counts it — OK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("nats", "registration", "certification", "analytics"):
        parser.add_argument(f"--{name}-url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--timeout", type=float, default=60)
    asyncio.run(smoke(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
