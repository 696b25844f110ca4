"""Property-based fuzzing of a service's HTTP API from its own OpenAPI document (schemathesis).

schemathesis generates the requests (every operation; what the document calls a valid request, and
for one caller what it calls invalid); the app answers in-process on the test's event loop, against the real NATS and
PostgreSQL of the fixtures. schemathesis' own ASGI transport would start the app again in a thread
with a loop of its own, where the app's database pool and NATS connection do not work, so the
requests go through `httpx.ASGITransport` here and only the checks are schemathesis'.

Checks on every answer:
* never a server error (5xx);
* the status is documented (every operation documents `default`: the error shape), and the body
  and media type conform to the documented response for that status;
* every error body is `{"error": {"code", "message"}}`;
* without a token, an operation documented with the bearer scheme answers 401.

Bounded and deterministic: `max_examples` per operation and caller, `derandomize=True`, no example
database, no shrinking (a failure is reported with the request that caused it).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
BASE_URL = "http://test"
MAX_EXAMPLES = 25
REQUEST_TIMEOUT = 30.0
OVER_LIMIT = 64 * 1024 + 1
"""One byte over the contract's 64 KiB request body limit (section 8)."""


@dataclass(frozen=True)
class Caller:
    """Who sends the generated requests: a name for the report, its token if any, and how many examples
    it sends to operations that need a token and to public ones."""

    name: str
    token: str | None = None
    secured_examples: int = MAX_EXAMPLES
    public_examples: int = MAX_EXAMPLES
    negative: bool = False
    """Requests the document calls invalid (wrong types, missing fields…): a 4xx, never a 5xx."""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


@dataclass
class FuzzReport:
    operations: list[str] = field(default_factory=list)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        statuses = dict(sorted(self.statuses.items()))
        return f"{len(self.operations)} operations, {self.requests} requests, statuses {statuses}"


def load_schema(app: FastAPI) -> Any:
    """The app's own OpenAPI document as a schemathesis schema."""
    return schemathesis.openapi.from_dict(app.openapi())


def secured(operation: Any) -> bool:
    """Documented as needing the bearer token (personal data or an operator action)."""
    return bool(operation.definition.raw.get("security"))


def human_page(operation: Any, response: httpx.Response) -> bool:
    """An HTML answer the document promises for this status (the verification page's 404 is a page for people)."""
    if not response.headers.get("content-type", "").startswith("text/html"):
        return False
    documented = operation.definition.raw.get("responses", {}).get(str(response.status_code), {})
    return "text/html" in documented.get("content", {})


def error_shape_problem(response: httpx.Response) -> str | None:
    """Why an error answer does not have the platform's error shape, or None when it does."""
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"error body is not JSON: {response.text[:200]!r}"
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str)):
        return f'error body is not {{"error": {{"code", "message"}}}}: {response.text[:300]}'
    return None


def _request_kwargs(case: Any, caller: Caller) -> dict[str, Any]:
    """A generated case as `httpx.AsyncClient.request` arguments (schemathesis serializes the body)."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
    headers.update(caller.headers())
    out: dict[str, Any] = {"method": kwargs["method"], "url": kwargs["url"], "headers": headers}
    if kwargs.get("params"):
        out["params"] = kwargs["params"]
    if "json" in kwargs:
        out["content"] = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "data" in kwargs:
        data = kwargs["data"]
        if isinstance(data, str):
            out["content"] = data.encode()
        elif isinstance(data, bytes | bytearray):
            out["content"] = bytes(data)
        else:
            out["data"] = data
    if "files" in kwargs:
        out["files"] = kwargs["files"]
    return out


def _describe(kwargs: Mapping[str, Any]) -> str:
    request = httpx.Request(kwargs["method"], kwargs["url"], params=kwargs.get("params"))
    body = kwargs.get("content") or kwargs.get("data") or b""
    return f"{kwargs['method']} {request.url} body={body[:300]!r}"


class ApiFuzzer:
    """Runs the generated requests of every operation of one app, as one caller at a time."""

    def __init__(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        *,
        skip: Collection[str] = (),
        known: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`known`: path parameter → ids that exist (seeded by the test); operations with such a parameter
        get half of their examples with one of them, so they also answer about real data."""
        self.schema = load_schema(app)
        self.client = client
        self.skip = frozenset(skip)
        self.known = {name: list(ids) for name, ids in (known or {}).items() if ids}

    def strategy(self, operation: Any, negative: bool = False) -> SearchStrategy[Any]:
        mode = GenerationMode.NEGATIVE if negative else GenerationMode.POSITIVE
        generated = operation.as_strategy(mode)
        names = [n for n in re.findall(r"\{([^}]+)\}", operation.path) if n in self.known]
        if not names:
            return generated
        fixed = st.fixed_dictionaries({n: st.sampled_from(self.known[n]) for n in names})
        return st.one_of(generated, fixed.flatmap(lambda values: operation.as_strategy(mode, path_parameters=values)))

    def operations(self) -> list[Any]:
        found = [result.ok() for result in self.schema.get_all_operations()]
        return [op for op in found if op.label not in self.skip]

    async def run(self, caller: Caller) -> FuzzReport:
        """Fuzz every operation as `caller`; hypothesis runs in a worker thread, the requests on this loop."""
        loop = asyncio.get_running_loop()
        report = FuzzReport()
        await asyncio.to_thread(self._run_all, loop, caller, report)
        return report

    def _run_all(self, loop: asyncio.AbstractEventLoop, caller: Caller, report: FuzzReport) -> None:
        for operation in self.operations():
            examples = caller.secured_examples if secured(operation) else caller.public_examples
            if examples <= 0:
                continue
            report.operations.append(operation.label)
            try:
                self._run_operation(loop, operation, caller, examples, report)
            except (Exception, BaseExceptionGroup) as exc:  # every operation reported, not only the first failing
                if caller.negative and isinstance(exc, Unsatisfiable):
                    continue  # nothing of it can be invalid (no parameters, or free strings only)
                report.failures.append(f"[{caller.name}] {operation.label}: {exc}")

    def _run_operation(
        self, loop: asyncio.AbstractEventLoop, operation: Any, caller: Caller, examples: int, report: FuzzReport
    ) -> None:
        needs_token = secured(operation)

        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
            print_blob=False,
        )
        @given(case=self.strategy(operation, caller.negative))
        def fuzz(case: Any) -> None:
            kwargs = _request_kwargs(case, caller)
            future = asyncio.run_coroutine_threadsafe(self.client.request(**kwargs), loop)
            try:
                response = future.result(timeout=REQUEST_TIMEOUT)
            except Exception as exc:  # the app raised: a real server answers 500 (or drops the connection)
                raise AssertionError(f"crash: {_describe(kwargs)}: {exc!r}") from exc
            report.requests += 1
            report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
            where = f"{kwargs['method']} {response.request.url} -> {response.status_code}"
            assert response.status_code < 500, f"server error: {where}: {response.text[:500]}"
            problem = None if human_page(operation, response) else error_shape_problem(response)
            assert problem is None, f"{where}: {problem}"
            if needs_token and caller.token is None:
                assert response.status_code == 401, f"{where} without a token (expected 401): {response.text[:300]}"
            case.validate_response(response, checks=CHECKS, headers=kwargs["headers"])

        fuzz()


def post_paths(app: FastAPI) -> list[str]:
    """Every POST path of the app's document, path parameters filled with a placeholder."""
    return [re.sub(r"\{[^}]+\}", "x1", path) for path, item in app.openapi()["paths"].items() if "post" in item]


async def oversized_answers(client: httpx.AsyncClient, paths: list[str], headers: Mapping[str, str]) -> dict[str, str]:
    """POST a JSON body one byte over 64 KiB to every path, once with Content-Length and once chunked (no
    length: counted as it arrives); path → what came back when it was not 413 `payload_too_large`."""
    body = b'{"pad": "' + b"x" * (OVER_LIMIT - 11) + b'"}'
    assert len(body) == OVER_LIMIT

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 16 * 1024):
            yield body[start : start + 16 * 1024]

    wrong: dict[str, str] = {}
    sent = {**headers, "Content-Type": "application/json"}
    for path in paths:
        for how, content in (("declared", body), ("chunked", chunks())):
            response = await client.post(path, content=content, headers=sent)
            problem = error_shape_problem(response)
            if response.status_code != 413 or problem or response.json()["error"]["code"] != "payload_too_large":
                wrong[path] = f"{how}: {response.status_code} {response.text[:200]}"
    return wrong
