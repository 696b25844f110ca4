"""Who is calling over HTTP: bearer tokens resolved to grants, and the checks routes declare.

* no token, or one that is not a well-formed bearer value (non-ASCII, spaces…) → 401;
* a token no grant knows → 403 `forbidden`;
* a valid token without the scope, or an institution token for another institution → 403.
Routes declare what they need: `Depends(require_scope("revoke"))`, `Depends(authenticated)` and
then `check_institution_access(grant, institution)` for personal data of one institution.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from iioe.runtime.http import ApiError
from iioe.runtime.logging import get_logger
from iioe.runtime.tokens import TokenGrant, TokenRegistry

_BEARER = re.compile(r"^Bearer ([A-Za-z0-9\-._~+/]+=*)$")
"""RFC 6750 `b64token`: anything else is malformed, never a server error."""


BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    description="An institution's token (`iioe credentials partner <inst> --json`, `http_token`) or an operator token.",
)
"""Documents the bearer scheme in OpenAPI on every route that needs a token; the checks below do the checking."""
Documented = HTTPAuthorizationCredentials | None


def _registry(request: Request) -> TokenRegistry:
    runtime = request.app.state.runtime
    registry: TokenRegistry = runtime.tokens
    return registry


async def authenticated(request: Request, _: Documented = Security(BEARER_SCHEME)) -> TokenGrant:
    """The grant of the request's bearer token (401 missing or malformed, 403 unknown)."""
    header = request.headers.get("authorization")
    if header is None:
        raise ApiError(
            401, "unauthorized", "send 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )
    match = _BEARER.fullmatch(header.strip())
    if match is None:
        raise ApiError(401, "invalid_token", "the Authorization header is not 'Bearer <token>' with a valid token")
    grant = await _registry(request).lookup(match.group(1))
    if grant is None:
        raise ApiError(403, "forbidden", "the bearer token is not valid for this platform")
    request.state.actor = grant.actor
    return grant


def require_scope(scope: str) -> Callable[[Request], Awaitable[TokenGrant]]:
    """An operator token holding `scope` (or `admin`)."""

    async def check(request: Request, _: Documented = Security(BEARER_SCHEME)) -> TokenGrant:
        grant = await authenticated(request)
        if not grant.allows(scope):
            raise ApiError(403, "forbidden", f"this action needs an operator token with the '{scope}' scope")
        return grant

    return check


def check_institution_access(grant: TokenGrant, institution: str) -> None:
    """Personal data of an institution's educators: that institution's token, or an operator's."""
    if grant.kind == "operator":
        return
    if grant.institution != institution:
        raise ApiError(403, "forbidden", "this token acts for another institution")


_audit = get_logger("iioe.audit")


def audit(grant: TokenGrant, action: str, **target: object) -> None:
    """One line per operator or institution action: who, what, on what (ids only, never personal data)."""
    _audit.info("audit", actor=grant.actor, kind=grant.kind, action=action, **target)
