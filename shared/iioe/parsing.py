"""Turning raw bytes from NATS into a typed CloudEvent, or a precise reason why not."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from iioe.envelope import CloudEvent, envelope_of
from iioe.events import BY_TYPE, EventSpec
from iioe.reasons import Reason
from iioe.subjects import MAX_EVENT_BYTES, parse_contact_subject, parse_event_subject

REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "data")


class InvalidEvent(Exception):
    """A message that can never be processed; it belongs in the dead-letter stream."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    return f"{where}: {err.get('msg')}" if where else str(err.get("msg"))


def _data_reason(exc: ValidationError) -> Reason:
    err = exc.errors()[0]
    if tuple(err.get("loc", ())) == ("data", "score") and err.get("type") in _RANGE_ERRORS:
        return Reason.SCORE_OUT_OF_RANGE
    return Reason.INVALID_DATA


_RANGE_ERRORS = {"greater_than_equal", "less_than_equal"}

MAX_JSON_DEPTH = 64
"""Deepest nesting accepted anywhere in an event; deeper JSON could be read but not written back."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _structure_problem(body: Any, check_strings: bool) -> str | None:
    """Why parsed JSON could not be written back: too deep, or a lone surrogate (`"\\ud800"`) in a string."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                return f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
                stack.extend((child, depth + 1) for child in node.values())
            else:
                stack.extend((child, depth + 1) for child in node)
        elif check_strings and isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds a lone UTF-16 surrogate, which is not Unicode text"
    return None


def parse_event(raw: bytes, subject: str | None = None) -> tuple[EventSpec, CloudEvent[Any]]:
    """Validate envelope and data; check that the subject names the event's institution and type.

    Raises only `InvalidEvent`, whose `reason` says why (contract section 6). With a `subject`
    (as received from NATS), the subject must follow the type's rule — `subject_mismatch` —
    and its institution token must be `data.institution` — `subject_institution_mismatch` —
    for every type, contacts included.
    """
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(Reason.TOO_LARGE, f"{len(raw)} bytes exceeds the {MAX_EVENT_BYTES}-byte limit")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidEvent(Reason.INVALID_JSON, "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, integers over 4300 digits
        raise InvalidEvent(Reason.INVALID_JSON, str(exc)) from None
    deep = raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH
    escaped_surrogate = _SURROGATE_ESCAPE.search(raw) is not None
    if deep or escaped_surrogate:
        problem = _structure_problem(body, escaped_surrogate)
        if problem:
            raise InvalidEvent(Reason.INVALID_JSON, problem)
    if not isinstance(body, dict):
        raise InvalidEvent(Reason.NOT_AN_OBJECT, f"a CloudEvent is a JSON object, got {type(body).__name__}")
    missing = [name for name in REQUIRED_ATTRIBUTES if name not in body]
    if missing:
        raise InvalidEvent(Reason.MISSING_ATTRIBUTE, f"missing CloudEvents attribute(s): {', '.join(missing)}")
    if body["specversion"] != "1.0":
        raise InvalidEvent(Reason.UNSUPPORTED_SPECVERSION, f"specversion {body['specversion']!r} is not '1.0'")
    spec = BY_TYPE.get(body["type"]) if isinstance(body["type"], str) else None
    if spec is None:
        raise InvalidEvent(Reason.UNKNOWN_TYPE, f"unknown event type {body['type']!r}")
    try:
        event = envelope_of(spec.model).model_validate(body)
    except ValidationError as exc:
        # which part is wrong: the attributes are judged first, then the data (one validation when all is well)
        envelope_only = {k: v for k, v in body.items() if k != "data"}
        try:
            envelope_of(Any).model_validate({**envelope_only, "data": None})
        except ValidationError as envelope_exc:
            raise InvalidEvent(Reason.INVALID_ATTRIBUTE, _first_error(envelope_exc)) from None
        raise InvalidEvent(_data_reason(exc), _first_error(exc)) from None
    if subject is not None:
        _check_subject(subject, spec, event)
    return spec, event


def _check_subject(subject: str, spec: EventSpec, event: CloudEvent[Any]) -> None:
    parts = parse_contact_subject(subject) if spec.contact else parse_event_subject(subject)
    institution = str(getattr(event.data, "institution", ""))
    if parts is None or parts.name != spec.name or parts.major != spec.major:
        raise InvalidEvent(
            Reason.SUBJECT_MISMATCH, f"{spec.type} must be published on {spec.subject_filter()}, not {subject}"
        )
    if parts.institution != institution:
        raise InvalidEvent(
            Reason.SUBJECT_INSTITUTION_MISMATCH,
            f"{spec.type} for institution {institution!r} must be published on {spec.subject(institution)}"
            f", not {subject}",
        )
