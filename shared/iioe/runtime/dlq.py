"""Dead letters (contract section 6): the original bytes as the body; the original subject,
consumer name, reason code and detail in headers; subject `iioe.dlq.<consumer>.<reason>`.

Retention is per reason (`RETENTION_DAYS`), enforced by the server through a per-message TTL
(`Nats-TTL`, IIOE_DLQ has `allow_msg_ttl`): junk a partner sent is kept long enough to tell
them, rule violations long enough to fix the catalogue and re-drive, our own processing
failures longest. Letters of `IIOE_CONTACTS` never outlive that stream's 30-day retention.

Operators `list`/`show`/`purge` with filters (consumer, reason, since) and `redrive`; a letter
is re-driven only onto a subject that its consumer actually consumes.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError
from pydantic import BaseModel

from iioe.reasons import Reason
from iioe.runtime.logging import get_logger
from iioe.subjects import CONTACTS_STREAM, DLQ_STREAM, EVENTS_STREAM, dlq_match, dlq_subject

log = get_logger(__name__)

H_REASON = "Iioe-Dlq-Reason"
H_DETAIL = "Iioe-Dlq-Detail"
H_CONSUMER = "Iioe-Dlq-Consumer"
H_SUBJECT = "Iioe-Dlq-Original-Subject"
H_STREAM = "Iioe-Dlq-Original-Stream"
H_SEQ = "Iioe-Dlq-Original-Seq"
H_FAILED_AT = "Iioe-Dlq-Failed-At"
H_DELIVERIES = "Iioe-Dlq-Deliveries"
H_TTL = "Nats-TTL"

DAY = 24 * 3600
_UNREADABLE = (
    Reason.TOO_LARGE,
    Reason.INVALID_JSON,
    Reason.NOT_AN_OBJECT,
    Reason.MISSING_ATTRIBUTE,
    Reason.INVALID_ATTRIBUTE,
    Reason.UNSUPPORTED_SPECVERSION,
    Reason.UNKNOWN_TYPE,
    Reason.INVALID_DATA,
    Reason.SUBJECT_MISMATCH,
)
RETENTION_DAYS: dict[str, int] = {
    **{str(r): 30 for r in _UNREADABLE},  # the sender must fix and re-send; the bytes themselves are junk
    str(Reason.UNKNOWN_COURSE): 90,  # may become valid once the catalogue grows: re-drive then
    str(Reason.SCORE_OUT_OF_RANGE): 90,
    str(Reason.INSTITUTION_MISMATCH): 90,
    str(Reason.PROCESSING_FAILED): 180,  # our failure: kept until the fix ships and it is re-driven
}
DEFAULT_RETENTION_DAYS = 90
"""Reasons not listed above (e.g. webhook delivery failures)."""
CONTACTS_RETENTION_DAYS = 30
"""A letter holding contact details (IIOE_CONTACTS) never outlives the contacts themselves."""


def retention_seconds(reason: str, original_stream: str | None = None) -> int:
    """How long IIOE_DLQ keeps a letter of `reason` (server-enforced per-message TTL)."""
    days = RETENTION_DAYS.get(reason, DEFAULT_RETENTION_DAYS)
    if original_stream == CONTACTS_STREAM:
        days = min(days, CONTACTS_RETENTION_DAYS)
    return days * DAY


class RedriveRefused(ValueError):
    """The letter's subject is not one its consumer consumes (or the consumer is gone)."""


class DeadLetter(BaseModel):
    """One message in IIOE_DLQ as an operator sees it."""

    seq: int
    subject: str
    reason: str
    detail: str
    consumer: str
    original_subject: str
    original_stream: str | None
    original_seq: int | None
    failed_at: str
    deliveries: int | None
    data_base64: str
    data_preview: str


def _header_safe(text: str, limit: int = 1000) -> str:
    return text.replace("\r", " ").replace("\n", " ")[:limit]


def dead_letter_headers(
    *,
    original_subject: str,
    consumer: str,
    reason: str,
    detail: str,
    original_stream: str | None = None,
    original_seq: int | None = None,
    deliveries: int | None = None,
    failed_at: datetime | None = None,
    msg_id: str | None = None,
) -> dict[str, str]:
    """Headers of a dead letter; `Nats-Msg-Id` (default: consumer + original message) deduplicates it."""
    headers = {
        H_REASON: reason,
        H_DETAIL: _header_safe(detail),
        H_CONSUMER: consumer,
        H_SUBJECT: original_subject,
        H_FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(),
    }
    if original_stream is not None:
        headers[H_STREAM] = original_stream
    if original_seq is not None:
        headers[H_SEQ] = str(original_seq)
    if msg_id is None and original_seq is not None:
        msg_id = f"{consumer}:{original_stream}:{original_seq}"
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    if deliveries is not None:
        headers[H_DELIVERIES] = str(deliveries)
    headers[H_TTL] = str(retention_seconds(reason, original_stream))
    return headers


async def dead_letter(
    js: JetStreamContext,
    *,
    data: bytes,
    original_subject: str,
    consumer: str,
    reason: str,
    detail: str,
    original_stream: str | None = None,
    original_seq: int | None = None,
    deliveries: int | None = None,
    msg_id: str | None = None,
) -> None:
    """Publish a dead letter to `iioe.dlq.<consumer>.<reason>`."""
    headers = dead_letter_headers(
        original_subject=original_subject,
        consumer=consumer,
        reason=reason,
        detail=detail,
        original_stream=original_stream,
        original_seq=original_seq,
        deliveries=deliveries,
        msg_id=msg_id,
    )
    try:
        await js.publish(dlq_subject(consumer, reason), data, headers=headers)
    except APIError as exc:
        if "ttl" not in str(exc.description or "").lower():
            raise
        # IIOE_DLQ provisioned before per-message TTLs: keep the letter (stream limits apply), re-provision
        headers.pop(H_TTL)
        await js.publish(dlq_subject(consumer, reason), data, headers=headers)
        log.warning("IIOE_DLQ does not allow per-message TTL: run `iioe provision`", error=str(exc))
    log.warning("dead-lettered", reason=reason, detail=detail, consumer=consumer, original_subject=original_subject)


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters: by consumer, by reason code, failed at or after `since` (all optional)."""

    consumer: str | None = None
    reason: str | None = None
    since: datetime | None = None

    @property
    def subject(self) -> str:
        return dlq_match(self.consumer, self.reason)

    def matches(self, letter: DeadLetter) -> bool:
        if self.since is None:
            return True
        try:
            failed_at = datetime.fromisoformat(letter.failed_at)
        except ValueError:
            return True  # unknown time: an operator would rather see it
        since = self.since if self.since.tzinfo else self.since.replace(tzinfo=UTC)
        return failed_at >= since


async def iter_dead_letters(js: JetStreamContext, where: LetterFilter | None = None) -> AsyncIterator[DeadLetter]:
    """Matching letters, oldest first (the server filters by subject; `since` is checked here)."""
    where = where or LetterFilter()
    seq = 1
    while True:
        try:
            msg = await js.get_msg(DLQ_STREAM, seq, subject=where.subject, next=True)
        except NotFoundError:
            return
        assert msg.seq is not None
        letter = _to_dead_letter(msg.seq, msg.subject or "", msg.data or b"", msg.headers or {})
        if where.matches(letter):
            yield letter
        seq = msg.seq + 1


async def list_dead_letters(
    js: JetStreamContext,
    *,
    limit: int = 100,
    consumer: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
) -> list[DeadLetter]:
    """The newest `limit` matching dead letters, oldest first."""
    if consumer is None and reason is None and since is None:
        return await _newest(js, limit)
    out = [letter async for letter in iter_dead_letters(js, LetterFilter(consumer, reason, since))]
    return out[-limit:] if limit > 0 else out


async def _newest(js: JetStreamContext, limit: int) -> list[DeadLetter]:
    info = await js.stream_info(DLQ_STREAM)
    if not info.state.messages:
        return []  # (an empty stream reports sequence 0, which the server refuses to look up)
    first, last = max(info.state.first_seq, 1), info.state.last_seq
    out: list[DeadLetter] = []
    seq = last
    while seq >= first and len(out) < limit:
        try:
            msg = await js.get_msg(DLQ_STREAM, seq)
        except NotFoundError:
            seq -= 1
            continue
        out.append(_to_dead_letter(msg.seq or seq, msg.subject or "", msg.data or b"", msg.headers or {}))
        seq -= 1
    return list(reversed(out))


async def show_dead_letter(js: JetStreamContext, seq: int) -> DeadLetter:
    """One letter, everything it holds (the body is in `data_base64`)."""
    msg = await js.get_msg(DLQ_STREAM, seq)
    return _to_dead_letter(seq, msg.subject or "", msg.data or b"", msg.headers or {})


async def purge_dead_letters(
    js: JetStreamContext, *, consumer: str | None = None, reason: str | None = None, since: datetime | None = None
) -> int:
    """Delete the matching letters; returns how many. Without any filter, every letter goes."""
    where = LetterFilter(consumer, reason, since)
    doomed = [letter.seq async for letter in iter_dead_letters(js, where)]
    for seq in doomed:
        try:
            await js.delete_msg(DLQ_STREAM, seq)
        except NotFoundError:
            pass  # expired or deleted meanwhile
    if doomed:
        log.info("dead letters purged", count=len(doomed), consumer=consumer, reason=reason, since=str(since))
    return len(doomed)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more trailing tokens."""
    p_tokens, s_tokens = pattern.split("."), subject.split(".")
    for i, token in enumerate(p_tokens):
        if token == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens) or (token != "*" and token != s_tokens[i]):
            return False
    return len(p_tokens) == len(s_tokens)


async def consumed_subjects(js: JetStreamContext, stream: str, consumer: str) -> list[str]:
    """The filter subjects of a durable consumer (its stream's subjects when it has no filter)."""
    try:
        info = await js.consumer_info(stream, consumer)
    except NotFoundError as exc:
        raise RedriveRefused(f"consumer {consumer!r} does not exist on stream {stream}") from exc
    config = info.config
    filters = list(config.filter_subjects or []) or ([config.filter_subject] if config.filter_subject else [])
    if filters:
        return filters
    return list((await js.stream_info(stream)).config.subjects or [])


def _to_dead_letter(seq: int, subject: str, data: bytes, headers: dict[str, str]) -> DeadLetter:
    orig_seq = headers.get(H_SEQ)
    deliveries = headers.get(H_DELIVERIES)
    return DeadLetter(
        seq=seq,
        subject=subject,
        reason=headers.get(H_REASON, ""),
        detail=headers.get(H_DETAIL, ""),
        consumer=headers.get(H_CONSUMER, ""),
        original_subject=headers.get(H_SUBJECT, ""),
        original_stream=headers.get(H_STREAM),
        original_seq=int(orig_seq) if orig_seq else None,
        failed_at=headers.get(H_FAILED_AT, ""),
        deliveries=int(deliveries) if deliveries else None,
        data_base64=base64.b64encode(data).decode(),
        data_preview=data[:200].decode("utf-8", errors="replace"),
    )


async def redrive(js: JetStreamContext, seq: int, *, force: bool = False) -> DeadLetter:
    """Publish a dead letter's original bytes to its original subject again, then remove it.

    Only onto a subject the letter's consumer consumes (checked against the durable's filters), so a
    letter can never be steered into another flow; `force` skips the check (e.g. for letters of a
    consumer that was removed). Consumers deduplicate on the CloudEvent through their inbox, so those
    that had already processed the event skip it; the one that failed processes it anew.
    """
    msg = await js.get_msg(DLQ_STREAM, seq)
    letter = _to_dead_letter(seq, msg.subject or "", msg.data or b"", msg.headers or {})
    if not letter.original_subject:
        raise RedriveRefused(f"dead letter {seq} has no original subject")
    if not force:
        stream = letter.original_stream or EVENTS_STREAM
        filters = await consumed_subjects(js, stream, letter.consumer)
        if not any(subject_matches(f, letter.original_subject) for f in filters):
            raise RedriveRefused(
                f"dead letter {seq}: consumer {letter.consumer!r} does not consume {letter.original_subject!r} "
                f"(its filters: {', '.join(filters)})"
            )
    await js.publish(letter.original_subject, msg.data or b"", headers={"Nats-Msg-Id": f"redrive:{DLQ_STREAM}:{seq}"})
    await js.delete_msg(DLQ_STREAM, seq)
    log.info("dead letter re-driven", seq=seq, original_subject=letter.original_subject)
    return letter
