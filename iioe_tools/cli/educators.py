"""`iioe educators erase <educator_id>`: erase an educator's personal data through the registration API.

It calls `DELETE /v1/educators/<id>` with the operator token (`IIOE_OPERATOR_TOKEN`, else the one
`iioe up` wrote to `IIOE_DATA_DIR/operator-token`), so the erasure follows exactly the service's
rules and is recorded with its actor; the registration service emits EducatorErased.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx


class EducatorsError(Exception):
    """Something the operator must fix (no token, service unreachable, refused)."""


def registration_url() -> str:
    """`IIOE_REGISTRATION_URL`, else the registration service of `iioe up` on this machine."""
    explicit = os.environ.get("IIOE_REGISTRATION_URL")
    if explicit:
        return explicit.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('IIOE_REGISTRATION_HTTP_PORT', '8001')}"


def operator_token() -> str:
    token = os.environ.get("IIOE_OPERATOR_TOKEN")
    if token:
        return token.strip()
    path = Path(os.environ.get("IIOE_DATA_DIR", ".iioe")) / "operator-token"
    try:
        return path.read_text().strip()
    except OSError:
        raise EducatorsError(f"no operator token: set IIOE_OPERATOR_TOKEN or run `iioe up` ({path})") from None


async def erase_educator(
    educator_id: str, *, url: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> dict[str, Any]:
    """Erase one educator; `{educator_id, institution, status: erased|already_erased, erased_at}`."""
    headers = {"Authorization": f"Bearer {operator_token()}"}
    base = url or registration_url()
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, transport=transport, timeout=30) as client:
            response = await client.delete(f"/v1/educators/{educator_id}")
    except httpx.HTTPError as exc:
        raise EducatorsError(f"registration service at {base} unreachable: {exc}") from None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise EducatorsError(f"{response.status_code} {error.get('code', '')}: {error.get('message', response.text)}")
    return body


def _erase(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(erase_educator(args.educator_id, url=args.url))
    except EducatorsError as exc:
        print(f"iioe educators erase: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['educator_id']} ({result['institution']}): {result['status']} at {result['erased_at']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("educators", help="operate on educators (erasure of personal data)")
    actions = p.add_subparsers(dest="action", required=True)
    erase = actions.add_parser("erase", help="erase an educator's name and e-mail (emits EducatorErased)")
    erase.add_argument("educator_id")
    erase.add_argument("--url", help="registration service URL (default: IIOE_REGISTRATION_URL or :8001)")
    erase.add_argument("--json", action="store_true", help="print one JSON object")
    erase.set_defaults(func=_erase)
