"""The HTTP API's own document and parameter checks, without servers (nothing connects until the app starts)."""

from __future__ import annotations

import httpx
import pytest

from iioe.runtime.auth import authenticated
from iioe.runtime.tokens import TokenGrant
from services.notifications.main import create_app

OPERATOR = TokenGrant(kind="operator", actor="operator", scopes=frozenset({"admin"}))


def test_the_openapi_document_builds_with_the_list_limits() -> None:
    """`limit` was an alias local to `build_router`: with postponed annotations FastAPI could not resolve it,
    so /openapi.json and every request naming `limit` answered 500 (found by tests/fuzz)."""
    document = create_app(NATS_URL="nats://127.0.0.1:1").openapi()
    for path in ("/v1/notifications", "/v1/webhooks/deliveries"):
        (limit,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "limit"]
        assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
async def test_a_limit_out_of_range_is_422_not_500(limit: str) -> None:
    app = create_app(NATS_URL="nats://127.0.0.1:1")
    app.dependency_overrides[authenticated] = lambda: OPERATOR
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/v1/notifications", params={"limit": limit}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
