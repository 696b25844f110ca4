"""The notifications outcome counters on `/metrics`: `iioe_mails_total{outcome=sent|failed}` move with the
mails the relay accepts and refuses (wired through `SendingObserver` in `main.py`)."""

from __future__ import annotations

import httpx
import pytest
from nats.aio.client import Client as NATS
from prometheus_client.parser import text_string_to_metric_families

from services.notifications.main import create_app
from services.notifications.tests.fakes import smtp_server
from tests.integration.test_notifications import register, settings_for
from tests.support.helpers import Infra, eventually, running_app

pytestmark = pytest.mark.integration


async def outcomes(http: httpx.AsyncClient, family: str) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    found: dict[str, float] = {}
    for metric in text_string_to_metric_families(response.text):
        for sample in metric.samples:
            if sample.name == f"{family}_total":
                found[sample.labels["outcome"]] = sample.value
    return found


async def test_mails_sent_and_refused_are_counted_on_metrics(
    infra: Infra, database_url: str, nc: NATS, ref: str
) -> None:
    inst = f"i-{ref}"
    refused = f"refused.{ref}@example.mn"
    with smtp_server() as (capture, port):
        settings = settings_for(infra, database_url, ref, port, mail_retry_base_seconds=0.2, mail_retry_cap_seconds=0.5)
        async with running_app(create_app(settings)) as http:
            assert await outcomes(http, "iioe_mails") == {"sent": 0.0, "failed": 0.0}
            assert await outcomes(http, "iioe_webhooks") == {"sent": 0.0, "failed": 0.0}
            capture.hold.add(refused)  # its first attempt is answered 451 once released
            await register(nc, inst, f"edu-{ref}-a", f"a.{ref}@example.mn", "en", "A")
            await register(nc, inst, f"edu-{ref}-b", refused, "en", "B")

            async def held() -> bool:
                return capture.held > 0

            await eventually(held, timeout=180, what="the mail to the refused address at the relay")
            capture.release()

            async def counted() -> dict[str, float] | None:
                # every accepted mail is counted once it is recorded; the 451 once, then the retry is sent
                seen = await outcomes(http, "iioe_mails")
                ours = capture.to(f"a.{ref}@example.mn") and capture.to(refused)
                return seen if ours and seen["sent"] == len(capture.messages) else None

            final = await eventually(counted, timeout=180, what="the sent mails on /metrics")
            assert final is not None
            assert final["failed"] >= 1.0  # (a session's earlier events replay here too: at least ours)
            assert final["sent"] >= 2.0
