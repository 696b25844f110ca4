"""A shared Faculty AI Portfolio as a W3C Verifiable Presentation in JWT form (VC-JWT `vp` claim).

`verifiableCredential` holds the educator's credentials exactly as issued (compact JWSs, each verifiable on its
own); the portfolio entries and practice reports are a claim of the presentation. The educator holds no key,
so the service signs the presentation with its own Ed25519 key: `iss` is the service's issuer id, `holder`
and `sub` the educator's URN, and the signature says "this is the portfolio the platform held when the link
was opened". Verify it like any credential: `verify_signature(token, jwks)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from services.certification.credentials.claims import DEFAULT_ISSUER, IssuerProfile, educator_urn

__all__ = ["PRESENTATION_CONTEXT", "PRESENTATION_TYPE", "build_presentation_claims", "share_urn"]

PRESENTATION_CONTEXT = ("https://www.w3.org/ns/credentials/v2",)
PRESENTATION_TYPE = ("VerifiablePresentation", "FacultyAIPortfolio")
SHARE_URN = "urn:iioe:portfolio-share:"


def share_urn(share_id: str) -> str:
    return SHARE_URN + quote(share_id, safe="")


def build_presentation_claims(
    *,
    share_id: str,
    educator_id: str,
    credentials: Sequence[str],
    portfolio: Mapping[str, Any],
    issued_at: datetime,
    issuer: IssuerProfile = DEFAULT_ISSUER,
) -> dict[str, Any]:
    """JWT claims (`iss`, `sub`, `jti`, `iat`, `nbf`, `vp`) of one shared portfolio as presented at `issued_at`.

    `credentials`: compact JWSs (VC-JWT) as issued. `portfolio`: the `entries`, `practiceReports` and the
    certificates' summary (ids, statuses, verification URLs) — opaque ids, titles and links only.
    """
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware")
    timestamp = int(issued_at.astimezone(UTC).timestamp())
    holder, jti = educator_urn(educator_id), share_urn(share_id)
    presentation = {
        "@context": list(PRESENTATION_CONTEXT),
        "id": jti,
        "type": list(PRESENTATION_TYPE),
        "holder": holder,
        "verifiableCredential": list(credentials),
        "portfolio": dict(portfolio),
    }
    return {"iss": issuer.id, "sub": holder, "jti": jti, "iat": timestamp, "nbf": timestamp, "vp": presentation}
