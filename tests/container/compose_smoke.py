"""Smoke test of a running compose deployment (deploy/scripts/compose-test.sh runs it).

Checks first that the NATS servers refuse a client without credentials (and a wrong
password), then registers one educator over HTTP, publishes the three CourseCompleted events
of the `ai-in-higher-education` programme (score >= 80) as the partner LMS of `must` would
(its own NATS user, over TLS), checks that this partner cannot publish for another
institution, and waits for the certificate: on the certification API (status active) and in
the analytics summary.

    python tests/container/compose_smoke.py --nats-url ... --registration-url ... \
        --certification-url ... --analytics-url ... [--token ...] \
        [--nats-tls-ca CA --nats-user USER --nats-password PASSWORD]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.errors import Error as NatsError

from iioe.runtime.nats import connect, server_list
from iioe.runtime.settings import NatsAuthOptions

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


async def refused(args: argparse.Namespace, what: str, **credentials: str) -> None:
    """A connection with these credentials (over TLS, so that TLS is not why) must be refused."""
    tls = NatsAuthOptions(tls_ca_file=args.nats_tls_ca).connect_kwargs() if args.nats_tls_ca else {}
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    try:
        nc = await nats.connect(
            server_list(args.nats_url)[:1],
            allow_reconnect=False,
            connect_timeout=5,
            error_cb=on_error,
            **tls,
            **credentials,
        )
    except (NatsError, OSError) as exc:
        errors.append(exc)
    else:
        await nc.close()
        raise SystemExit(f"compose smoke: FAILED: NATS accepted {what}")
    reason = " ".join(str(e) for e in errors).lower()
    assert "authorization" in reason, f"{what}: refused for another reason: {errors!r}"
    print(f"compose smoke: NATS refuses {what} (authorization violation)")


async def smoke(args: argparse.Namespace) -> None:
    if args.nats_user:
        await refused(args, "an anonymous client")
        await refused(args, "a wrong password", user=args.nats_user, password="wrong-" + secrets.token_hex(4))
    auth = NatsAuthOptions(
        user=args.nats_user or None,
        password=args.nats_password or None,
        inbox_prefix=f"_INBOX_{args.nats_user}" if args.nats_user else None,
        tls_ca_file=args.nats_tls_ca,
    )
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

        nc = await connect(args.nats_url, "compose-smoke", connect_attempts=5, auth=auth)
        try:
            js = nc.jetstream()
            if args.nats_user:
                # the partner of `must` may not speak for another institution: no PubAck, ever
                other = course_completed(educator_id, COURSES[0], 99)
                try:
                    await js.publish("iioe.events.other.course_completed.v1", json.dumps(other).encode(), timeout=2)
                except NatsError:
                    print("compose smoke: the partner cannot publish for another institution")
                else:
                    raise SystemExit("compose smoke: FAILED: partner published for another institution")
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
    parser.add_argument("--nats-tls-ca", type=Path, default=None, help="CA certificate of the NATS servers")
    parser.add_argument("--nats-user", default="", help="a partner user (partner-<institution>)")
    parser.add_argument("--nats-password", default="")
    parser.add_argument("--timeout", type=float, default=60)
    asyncio.run(smoke(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
