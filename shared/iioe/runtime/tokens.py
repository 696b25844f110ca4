"""HTTP bearer tokens: grants kept hashed in a JetStream key-value bucket, checked by every service.

Why a bucket: tokens are created and revoked by the operator CLI while the services run, in as
many replicas as there are; a KV watch reaches all of them within milliseconds and no service
reads another's database. Only SHA-256 hashes are stored (tokens are 32 random bytes, so a
plain hash is enough); the token itself is shown once to whoever created it.

A grant says who acts (`actor`, carried into events and the audit log), what kind of principal
it is (an institution's partner system or an operator) and, for operators, which scopes it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Literal

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field, ValidationError

from iioe.access import TOKENS_BUCKET
from iioe.runtime.logging import get_logger

log = get_logger(__name__)

OPERATOR_SCOPES: frozenset[str] = frozenset({"revoke", "recognize", "webhooks", "dlq", "keys", "admin"})
"""Operator scopes (contract §8); `admin` implies every other one."""


class TokenGrant(BaseModel):
    """What a bearer token allows."""

    kind: Literal["operator", "institution"]
    actor: str = Field(min_length=1, max_length=128)
    """Who acts: `operator`, `partner-must`, a named operator token … (never a person's e-mail)."""
    institution: str | None = None
    scopes: frozenset[str] = frozenset()
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def allows(self, scope: str) -> bool:
        return self.kind == "operator" and ("admin" in self.scopes or scope in self.scopes)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The bucket key of a token: its SHA-256 in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


async def token_bucket(js: JetStreamContext, *, create: bool = False) -> KeyValue:
    """The grants bucket; only provisioning (the operator) creates it."""
    try:
        return await js.key_value(TOKENS_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        if not create:
            raise
        return await js.create_key_value(bucket=TOKENS_BUCKET, history=1, description="HTTP token grants (hashes)")


async def put_grant(js: JetStreamContext, token: str, grant: TokenGrant) -> None:
    bucket = await token_bucket(js, create=True)
    await bucket.put(hash_token(token), grant.model_dump_json().encode())


async def delete_grants(js: JetStreamContext, *, actor: str) -> int:
    """Revoke every token of one actor; returns how many were revoked."""
    bucket = await token_bucket(js, create=True)
    try:
        keys = await bucket.keys()
    except NotFoundError:  # an empty bucket has no keys
        return 0
    revoked = 0
    for key in keys:
        with contextlib.suppress(KeyNotFoundError):
            entry = await bucket.get(key)
            if entry.value and TokenGrant.model_validate_json(entry.value).actor == actor:
                await bucket.purge(key)
                revoked += 1
    return revoked


class TokenRegistry:
    """The grants as this process knows them: a live watch of the bucket, with a direct read on a miss
    (a token created a moment ago must work at once)."""

    def __init__(self, static: dict[str, TokenGrant] | None = None) -> None:
        self._static = {hash_token(token): grant for token, grant in (static or {}).items()}
        self._grants: dict[str, TokenGrant] = {}
        self._bucket: KeyValue | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, js: JetStreamContext) -> None:
        """Follow the bucket; without one (an unprovisioned server) only static tokens work."""
        try:
            self._bucket = await token_bucket(js)
        except (BucketNotFoundError, NotFoundError):
            log.warning("no token bucket: only the configured operator token is accepted", bucket=TOKENS_BUCKET)
            return
        self._task = asyncio.create_task(self._follow(self._bucket), name="token-registry")

    async def _follow(self, bucket: KeyValue) -> None:
        while True:
            try:
                watcher = await bucket.watchall()
                async for entry in watcher:
                    if entry is None:  # end of the initial values
                        continue
                    self._apply(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the client reconnects, the watch starts over
                log.warning("token watch interrupted", error=repr(exc))
                await asyncio.sleep(1.0)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in ("DEL", "PURGE") or not value:
            self._grants.pop(key, None)
            return
        try:
            self._grants[key] = TokenGrant.model_validate_json(value)
        except ValidationError:
            log.error("unreadable token grant ignored", key=key[:12])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a KV watch blocked inside the client must not hold the service's shutdown
            _, stuck = await asyncio.wait({self._task}, timeout=5.0)
            if stuck:
                log.warning("token watch did not stop in time")
            self._task = None

    async def lookup(self, token: str) -> TokenGrant | None:
        key = hash_token(token)
        grant = self._static.get(key) or self._grants.get(key)
        if grant is not None or self._bucket is None:
            return grant
        try:
            entry = await self._bucket.get(key)
        except (KeyNotFoundError, NotFoundError):
            return None
        except Exception as exc:  # NATS briefly away: the watch state is the best we know
            log.warning("token lookup failed", error=repr(exc))
            return None
        self._apply(key, entry.value, entry.operation)
        return self._grants.get(key)
