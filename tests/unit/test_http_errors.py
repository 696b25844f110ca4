"""The error shape every service documents and answers (contract section 8), without servers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from iioe.runtime.http import install_error_handlers
from iioe.runtime.limits import BodySizeLimit
from services.analytics.main import create_app as create_analytics
from services.certification.main import create_app as create_certification
from services.notifications.main import create_app as create_notifications
from services.registration.main import create_app as create_registration


class Reason(BaseModel):
    reason: str


NOWHERE = "nats://127.0.0.1:1"
"""Nothing connects until an app starts; these tests only build them."""


async def test_text_postgresql_cannot_store_is_a_422_with_the_error_shape() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/nul")
    async def nul() -> None:
        raise asyncpg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00')

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/nul")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_character"


def test_every_operation_documents_the_error_shape_and_its_bearer_token() -> None:
    """`default` → ErrorResponse on every operation (no FastAPI `detail` 422 left), and every route that checks a
    token documents the bearer scheme, so generated clients and schemathesis know both."""
    secured = {
        "registration": {"/v1/educators", "/v1/educators/{educator_id}", "/v1/educators/export"},
        "certification": {"/v1/educators/{educator_id}/progress", "/v1/certificates/{certificate_id}/revoke"},
        "notifications": {"/v1/notifications", "/v1/webhooks"},
        "analytics": set(),
    }
    apps = {
        "registration": create_registration(NATS_URL=NOWHERE),
        "certification": create_certification(NATS_URL=NOWHERE),
        "analytics": create_analytics(NATS_URL=NOWHERE),
        "notifications": create_notifications(NATS_URL=NOWHERE),
    }
    for name, app in apps.items():
        document = app.openapi()
        assert document["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
        assert "HTTPValidationError" not in document["components"]["schemas"], name
        for path, item in document["paths"].items():
            for method, operation in item.items():
                default = operation["responses"]["default"]["content"]["application/json"]["schema"]
                assert default == {"$ref": "#/components/schemas/ErrorResponse"}, (name, method, path)
                if path in secured[name]:
                    assert operation.get("security") == [{"HTTPBearer": []}], (name, method, path)
        public = document["paths"].get("/v1/analytics/summary") or document["paths"].get("/livez")
        assert "security" not in public["get"]


async def test_a_chunked_body_over_64_kib_is_413_on_routes_that_parse_it_or_ignore_it() -> None:
    """Counted while the route read it, the limit surfaced as FastAPI's 400 "error parsing the body" on a
    pydantic body, and never on a route without a body (found by tests/fuzz)."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/parsed")
    async def parsed(body: Reason) -> dict[str, int]:
        return {"length": len(body.reason)}

    @app.post("/ignored")
    async def ignored() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(BodySizeLimit, max_bytes=64 * 1024)

    def chunked(size: int) -> AsyncIterator[bytes]:
        body = json.dumps({"reason": "x" * (size - 14)}).encode()
        assert len(body) == size

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        return chunks()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in ("/parsed", "/ignored"):
            response = await http.post(
                path, content=chunked(64 * 1024 + 1), headers={"content-type": "application/json"}
            )
            assert (response.status_code, response.json()["error"]["code"]) == (413, "payload_too_large"), path
        fits = await http.post("/parsed", content=chunked(64 * 1024), headers={"content-type": "application/json"})
        assert fits.json() == {"length": 64 * 1024 - 14}
