"""Dead letters (contract section 6): the original bytes as the body; the original subject,
consumer name, reason code and detail in headers; subject `iioe.dlq.<consumer>.<reason>`."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import BaseModel

from iioe.runtime.logging import get_logger
from iioe.subjects import DLQ_STREAM, dlq_subject

log = get_logger(__name__)

H_REASON = "Iioe-Dlq-Reason"
H_DETAIL = "Iioe-Dlq-Detail"
H_CONSUMER = "Iioe-Dlq-Consumer"
H_SUBJECT = "Iioe-Dlq-Original-Subject"
H_STREAM = "Iioe-Dlq-Original-Stream"
H_SEQ = "Iioe-Dlq-Original-Seq"
H_FAILED_AT = "Iioe-Dlq-Failed-At"
H_DELIVERIES = "Iioe-Dlq-Deliveries"


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
    await js.publish(dlq_subject(consumer, reason), data, headers=headers)
    log.warning("dead-lettered", reason=reason, detail=detail, consumer=consumer, original_subject=original_subject)


async def list_dead_letters(js: JetStreamContext, *, limit: int = 100) -> list[DeadLetter]:
    """The newest `limit` dead letters, oldest first."""
    info = await js.stream_info(DLQ_STREAM)
    first, last = info.state.first_seq, info.state.last_seq
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


async def redrive(js: JetStreamContext, seq: int) -> DeadLetter:
    """Publish a dead letter's original bytes to its original subject again, then remove it.

    Consumers deduplicate on the CloudEvent id through their inbox, so consumers that had
    already processed the event skip it; the one that failed processes it anew.
    """
    msg = await js.get_msg(DLQ_STREAM, seq)
    letter = _to_dead_letter(seq, msg.subject or "", msg.data or b"", msg.headers or {})
    if not letter.original_subject:
        raise ValueError(f"dead letter {seq} has no original subject")
    await js.publish(letter.original_subject, msg.data or b"", headers={"Nats-Msg-Id": f"redrive:{DLQ_STREAM}:{seq}"})
    await js.delete_msg(DLQ_STREAM, seq)
    log.info("dead letter re-driven", seq=seq, original_subject=letter.original_subject)
    return letter
