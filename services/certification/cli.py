"""`iioe verify` (anyone holding a credential) and `iioe certification rotate-key` (operators).

`verify` is what a receiving university runs: it checks the signature against the published JWKS (or a
JWKS file, fully offline) and the certificate's status: from cached W3C Bitstring Status List credentials
(`--status-list FILE`, repeatable, fully offline) and/or, when online, by asking the issuer.
Exit codes: 0 valid, 1 invalid, suspended or revoked, 2 could not check (network, unreadable input).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from iioe.runtime.db import setup_database
from iioe.runtime.settings import DEFAULT_DATABASE_URL
from services.certification.credentials import (
    CredentialError,
    ListStatus,
    VerifiedCredential,
    verify_credential,
    verify_status_list,
)

DEFAULT_URL = "http://127.0.0.1:8002"
JWKS_PATH = "/.well-known/jwks.json"
VALID, INVALID, UNCHECKED = 0, 1, 2


class CheckError(Exception):
    """The check could not be done (input unreadable, issuer unreachable): neither valid nor invalid."""


@dataclass
class Report:
    status: str  # valid | suspended | revoked | invalid
    lines: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return VALID if self.status == "valid" else INVALID


def read_credential(source: str) -> str:
    """A compact JWS from the argument itself, a file holding it, a CertificateIssued event or `{credential}`."""
    text = sys.stdin.read() if source == "-" else source
    if source != "-" and _is_file(source):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise CheckError(f"cannot read {source}: {exc}") from None
    elif source != "-" and source.count(".") != 2:
        raise CheckError(f"{source[:80]!r} is neither a file nor a compact JWS")
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckError(f"{source}: not valid JSON: {exc}") from None
        data = doc.get("data") if isinstance(doc.get("data"), dict) else doc
        token = data.get("credential")
        if not isinstance(token, str):
            raise CheckError(f"{source}: no 'credential' (or 'data.credential') string in this JSON")
        return token.strip()
    return text


def _is_file(source: str) -> bool:
    try:
        return Path(source).is_file()
    except (OSError, ValueError):  # a JWT is usually longer than a file name may be
        return False


def load_jwks(jwks: str, client: httpx.Client) -> dict[str, Any]:
    try:
        if jwks.startswith(("http://", "https://")):
            response = client.get(jwks)
            response.raise_for_status()
            doc = response.json()
        else:
            doc = json.loads(Path(jwks).read_text(encoding="utf-8"))
    except (httpx.HTTPError, OSError, ValueError) as exc:
        raise CheckError(f"cannot load the JWKS from {jwks}: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise CheckError(f"{jwks} is not a JWK Set")
    return doc


def describe(verified: VerifiedCredential) -> list[str]:
    vc = verified.credential
    subject = vc.get("credentialSubject", {})
    achievement = subject.get("achievement", {})
    issuer = vc.get("issuer", {})
    names = {n.get("@language"): n.get("@value") for n in achievement.get("nameLocalized", []) if isinstance(n, dict)}
    other = ", ".join(f"{lang}: {name}" for lang, name in names.items() if name != achievement.get("name"))
    return [
        f"certificate: {verified.certificate_id}",
        f"educator:    {verified.educator_id}",
        f"programme:   {verified.programme_id} — {achievement.get('name', '?')}" + (f" ({other})" if other else ""),
        f"courses:     {', '.join(verified.course_ids)}",
        f"issued:      {verified.issued_at.isoformat()}",
        f"credits:     {subject.get('creditsEarned', '?')} {achievement.get('creditSystem', '')}".rstrip(),
        f"issuer:      {issuer.get('name', '?') if isinstance(issuer, dict) else '?'} ({verified.issuer_id}),"
        f" key {verified.kid}",
    ]


def load_status_lists(
    sources: list[str], jwks: dict[str, Any], issuer: str | None, client: httpx.Client
) -> dict[str, ListStatus]:
    """Status list credentials (the VC-JWT served at `/status/<list>`: a cached file, or its URL), by list URL."""
    lists: dict[str, ListStatus] = {}
    for source in sources:
        try:
            if source.startswith(("http://", "https://")):
                response = client.get(source)
                response.raise_for_status()
                token = response.text.strip()
            else:
                token = Path(source).read_text(encoding="utf-8").strip()
        except (OSError, httpx.HTTPError) as exc:
            raise CheckError(f"cannot read the status list {source}: {exc}") from None
        try:
            listed = verify_status_list(token, jwks, issuer=issuer)
        except CredentialError as exc:
            raise CheckError(f"the status list {source} does not verify ({exc.reason}): {exc.detail}") from None
        lists[listed.list_url] = listed
    return lists


def status_from_lists(verified: VerifiedCredential, lists: dict[str, ListStatus]) -> tuple[str, list[str]]:
    """(valid | suspended | revoked, lines) from the credential's `credentialStatus` entries and the lists."""
    entries = verified.credential.get("credentialStatus") or []
    if isinstance(entries, dict):
        entries = [entries]
    if not entries:
        return "valid", ["status:      this credential names no status list (issued before contract 1.1)"]
    found: set[str] = set()
    lines = []
    for entry in entries:
        purpose, url = entry.get("statusPurpose"), entry.get("statusListCredential")
        listed = lists.get(url) if isinstance(url, str) else None
        if listed is None or listed.purpose != purpose or listed.issuer_id != verified.issuer_id:
            lines.append(f"status:      {purpose}: not checked (no cached list {url})")
            continue
        try:
            is_set = listed.is_set(int(entry.get("statusListIndex", "")))
        except ValueError as exc:
            raise CheckError(f"status entry {entry.get('id')}: {exc}") from None
        when = f" (list of {listed.valid_from})" if listed.valid_from else ""
        lines.append(f"status:      {purpose}: {'SET' if is_set else 'clear'}{when}")
        if is_set:
            found.add(str(purpose))
    status = "revoked" if "revocation" in found else "suspended" if "suspension" in found else "valid"
    return status, lines


def check(
    token: str,
    jwks_source: str,
    status_url: str | None,
    issuer: str | None = None,
    status_lists: list[str] | None = None,
) -> Report:
    """Verify offline, check cached status lists, then (if `status_url`) ask the issuer for the status."""
    with httpx.Client(timeout=10.0) as client:
        jwks = load_jwks(jwks_source, client)
        try:
            verified = verify_credential(token, jwks, issuer=issuer)
        except CredentialError as exc:
            return Report("invalid", [f"INVALID ({exc.reason}): {exc.detail}"])
        lines = describe(verified)
        if status_lists:
            listed_status, list_lines = status_from_lists(
                verified, load_status_lists(status_lists, jwks, issuer, client)
            )
            lines += list_lines
            if listed_status != "valid":
                return Report(listed_status, [f"{listed_status.upper()} (status list)", *lines])
            if status_url is None:
                unchecked = [line for line in list_lines if "not checked" in line]
                head = "VALID signature, status partly checked" if unchecked else "VALID (signature and status lists)"
                return Report("valid", [head, *lines])
        if status_url is None:
            return Report("valid", ["VALID signature", *lines, "status:      status not checked (offline)"])
        try:
            response = client.get(f"{status_url.rstrip('/')}/v1/certificates/{verified.certificate_id}")
        except httpx.HTTPError as exc:
            raise CheckError(f"signature valid, but the status could not be checked: {exc}") from None
    if response.status_code == 404:
        return Report("invalid", ["INVALID: the issuer has no record of this certificate", *lines])
    if response.status_code != 200:
        raise CheckError(f"signature valid, but the status check answered HTTP {response.status_code}")
    cert = response.json()
    if cert.get("status") == "suspended":
        suspension = cert.get("suspension") or {}
        reason = f"{suspension.get('reason') or 'no reason given'} (since {suspension.get('at', '?')})"
        return Report("suspended", [f"SUSPENDED: {reason}", *lines, f"status:      suspended — {reason}"])
    if cert.get("status") == "revoked":
        revocation = cert.get("revocation") or {}
        reason = f"{revocation.get('reason', '?')} (at {revocation.get('revoked_at', '?')})"
        return Report("revoked", [f"REVOKED: {reason}", *lines, f"status:      revoked — {reason}"])
    return Report("valid", ["VALID", *lines, "status:      active (checked with the issuer)"])


def run_verify(args: argparse.Namespace) -> int:
    base_url = args.url or os.environ.get("IIOE_CERTIFICATION_URL", DEFAULT_URL)
    jwks_source = args.jwks or f"{base_url.rstrip('/')}{JWKS_PATH}"
    online = jwks_source.startswith(("http://", "https://"))
    status_url = None
    if online and not args.offline:
        status_url = args.url or (jwks_source.removesuffix(JWKS_PATH) if jwks_source.endswith(JWKS_PATH) else base_url)
    try:
        report = check(read_credential(args.credential), jwks_source, status_url, args.issuer, args.status_list)
    except CheckError as exc:
        print(f"CANNOT CHECK: {exc}", file=sys.stderr)
        return UNCHECKED
    print("\n".join(report.lines))
    return report.exit_code


async def _rotate_in_database(database_url: str, schema: str) -> dict[str, Any]:
    from services.certification import keys
    from services.certification.main import MIGRATIONS
    from services.certification.settings import SOURCE, CertificationSettings
    from services.certification.store import PostgresUnitOfWork

    pool = await setup_database(database_url, schema, MIGRATIONS, max_size=1)
    try:
        uow = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=CertificationSettings().key_vault())
        async with uow.transaction() as tx:
            ring = await keys.rotate_key(tx.keys)
    finally:
        await pool.close()
    return {"active_kid": ring.active_kid, "kids": list(ring.kids)}


def run_rotate(args: argparse.Namespace) -> int:
    if args.url:
        token = args.token or os.environ.get("IIOE_CERTIFICATION_API_TOKEN", "")
        response = httpx.post(
            f"{args.url.rstrip('/')}/v1/keys/rotate", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        if response.status_code != 200:
            print(f"rotation failed: HTTP {response.status_code} {response.text}", file=sys.stderr)
            return 1
        result = response.json()
    else:
        result = asyncio.run(_rotate_in_database(args.database_url, args.schema))
    print(f"active key: {result['active_kid']}")
    print(f"published keys (JWKS): {', '.join(result['kids'])}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("verify", help="verify a certificate credential (VC-JWT) and show who, what, when")
    p.add_argument("credential", metavar="FILE_OR_JWT", help="a JWT, a file with one, or a CertificateIssued JSON")
    p.add_argument("--jwks", help="JWKS URL or file (a file means offline); default <url>/.well-known/jwks.json")
    p.add_argument("--url", help="certification service URL (default $IIOE_CERTIFICATION_URL or :8002)")
    p.add_argument("--issuer", help="require this issuer id (`iss`)")
    p.add_argument("--offline", action="store_true", help="do not ask the issuer about the status")
    p.add_argument(
        "--status-list",
        action="append",
        default=[],
        metavar="FILE_OR_URL",
        help="a status list credential: a cached file (saved from the credential's statusListCredential URL)"
        " or that URL; repeat for the revocation and the suspension list — checked against the JWKS",
    )
    p.set_defaults(func=run_verify)

    c = sub.add_parser("certification", help="operate the certification service")
    csub = c.add_subparsers(dest="certification_command", required=True)
    r = csub.add_parser("rotate-key", help="sign with a new Ed25519 key; old keys stay in the JWKS")
    r.add_argument("--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    r.add_argument("--schema", default="certification")
    r.add_argument("--url", help="rotate through the service's HTTP API instead of the database")
    r.add_argument("--token", help="operator token for --url (default $IIOE_CERTIFICATION_API_TOKEN)")
    r.set_defaults(func=run_rotate)

    from services.certification.key_cli import register as register_keys

    register_keys(csub)
