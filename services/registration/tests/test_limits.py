"""The 64 KiB body limit as an ASGI middleware, on a tiny app: no servers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from services.registration.limits import BodyLimit


def app_with_limit(limit: int = 100) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    @app.post("/import")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodyLimit, max_bytes=limit, exempt={"/import"})
    return app


async def post(app: FastAPI, path: str, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post(path, content=content)


async def pieces(n: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(n):
        yield b"x" * size


@pytest.mark.parametrize(("size", "status"), [(0, 200), (100, 200), (101, 413)])
async def test_declared_length_is_checked(size: int, status: int) -> None:
    response = await post(app_with_limit(), "/echo", b"x" * size)
    assert response.status_code == status
    if status == 413:
        assert response.json()["error"]["code"] == "payload_too_large"
    else:
        assert response.json() == {"received": size}


async def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    assert (await post(app_with_limit(), "/echo", pieces(10, 10))).json() == {"received": 100}
    assert (await post(app_with_limit(), "/echo", pieces(11, 10))).status_code == 413


async def test_exempt_paths_read_their_own_bodies() -> None:
    assert (await post(app_with_limit(), "/import", b"x" * 1000)).json() == {"received": 1000}
