"""HTTP limits and bearer-token checks every service shares, without servers (contract §8)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from iioe.runtime.auth import authenticated, check_institution_access, require_scope
from iioe.runtime.http import install_error_handlers
from iioe.runtime.limits import BodySizeLimit, PublicRateLimit
from iioe.runtime.tokens import TokenGrant, TokenRegistry

OPERATOR = "op-token-1"
NARROW = "op-token-dlq"
MUST = "must-token"


def build_app(*, rate: float = 1000.0, burst: int = 1000) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.state.runtime = SimpleNamespace(
        tokens=TokenRegistry(
            {
                OPERATOR: TokenGrant(kind="operator", actor="operator", scopes=frozenset({"admin"})),
                NARROW: TokenGrant(kind="operator", actor="dlq-bot", scopes=frozenset({"dlq"})),
                MUST: TokenGrant(kind="institution", actor="partner-must", institution="must"),
            }
        )
    )

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/import")
    async def bulk(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/public")
    async def public() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/institutions/{code}/people")
    async def people(code: str, grant: TokenGrant = Depends(authenticated)) -> dict[str, str]:
        check_institution_access(grant, code)
        return {"actor": grant.actor}

    @app.post("/revoke", dependencies=[Depends(require_scope("revoke"))])
    async def revoke() -> dict[str, str]:
        return {"ok": "revoked"}

    app.add_middleware(BodySizeLimit, max_bytes=64 * 1024, exempt=("/import",))
    app.add_middleware(PublicRateLimit, rate_per_second=rate, burst=burst)
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_bodies_over_64_kib_are_refused_with_413_whether_declared_or_streamed(http: httpx.AsyncClient) -> None:
    assert (await http.post("/echo", content=b"x" * 65536)).json() == {"bytes": 65536}
    declared = await http.post("/echo", content=b"x" * 65537)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(20):
            yield b"y" * 8192

    streamed = await http.post("/echo", content=chunks())
    assert streamed.status_code == 413
    assert (await http.post("/import", content=b"z" * 200_000)).json() == {"bytes": 200_000}


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic abc", "Bearer two words", "Bearer tök€n", "bearer", "Bearer a\tb"],
)
async def test_malformed_bearer_values_are_401_never_500(http: httpx.AsyncClient, header: str) -> None:
    response = await http.get("/institutions/must/people", headers={b"Authorization": header.encode("utf-8")})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] in ("invalid_token", "unauthorized")


async def test_tokens_are_scoped_to_their_institution_and_operator_scopes(http: httpx.AsyncClient) -> None:
    assert (await http.get("/institutions/must/people")).status_code == 401
    assert (await http.get("/institutions/must/people", headers={"Authorization": "Bearer nope"})).status_code == 403
    own = await http.get("/institutions/must/people", headers={"Authorization": f"Bearer {MUST}"})
    assert own.status_code == 200 and own.json() == {"actor": "partner-must"}
    other = await http.get("/institutions/num/people", headers={"Authorization": f"Bearer {MUST}"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    operator = await http.get("/institutions/num/people", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert operator.status_code == 200

    assert (await http.post("/revoke", headers={"Authorization": f"Bearer {OPERATOR}"})).status_code == 200
    assert (await http.post("/revoke", headers={"Authorization": f"Bearer {NARROW}"})).status_code == 403
    assert (await http.post("/revoke", headers={"Authorization": f"Bearer {MUST}"})).status_code == 403


async def test_unauthenticated_clients_are_rate_limited_with_retry_after() -> None:
    transport = httpx.ASGITransport(app=build_app(rate=1.0, burst=5))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        statuses = [(await http.get("/public")).status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        limited = await http.get("/public")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        # credentials are not limited here, and probes never are
        authed = await http.get("/institutions/must/people", headers={"Authorization": f"Bearer {MUST}"})
        assert authed.status_code == 200
