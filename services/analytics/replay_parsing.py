"""The rebuild's parser: the same accept/reject as `parse_event` + `projection_event`, for less CPU.

`parse_event` validates every envelope twice: once with `data` left out, only to name the
precise reason when an envelope attribute is wrong, then in full. It also parses the subject
with a regular expression for every message. A rebuild replays a million events that were
all parsed once already, and it needs only "project or skip", not the reason. So:

* a message is validated once, with the same `json.loads` and the same pydantic model as
  `parse_event` (python-mode validation of the same body: the same semantics, not a second
  implementation of the contract);
* the subject is parsed once per distinct subject (there are a few hundred), then compared
  exactly as `parse_event` compares it;
* whatever is not plainly valid — too large, deeply nested or with a surrogate escape, a missing
  or wrong attribute, an unknown or contact type, invalid data, a subject that does not fit —
  goes through `parse_event` and `projection_event` themselves, which raise (or accept) as on
  the live path.

Skipping the envelope-only validation changes no outcome: it checks the envelope fields of the
full model with `data` accepted as anything, so an event that passes the full validation passes
it too. `tests/test_replay_parsing.py` checks the equivalence on generated valid and hostile input.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from pydantic import ValidationError

from iioe.envelope import envelope_of
from iioe.events import BY_TYPE
from iioe.parsing import MAX_JSON_DEPTH, REQUIRED_ATTRIBUTES, parse_event
from iioe.subjects import MAX_EVENT_BYTES, EventSubject, parse_event_subject
from services.analytics.domain import ProjectionEvent
from services.analytics.handlers import projection_event

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""As in `iioe.parsing`: a `\\uD800`-style escape sends the message to the full check."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@functools.lru_cache(maxsize=4096)
def _event_subject(subject: str) -> EventSubject | None:
    """`parse_event_subject`, once per distinct subject (it is a pure function of the string)."""
    return parse_event_subject(subject)


def parse_projection_event(raw: bytes, subject: str) -> ProjectionEvent:
    """The event to project; raises `InvalidEvent` or `Unprocessable` exactly when the live path would."""
    fast = _plainly_valid(raw, subject)
    if fast is not None:
        return fast
    spec, event = parse_event(raw, subject)
    return projection_event(spec, event.id, event.data, event.time, event.source)


def _plainly_valid(raw: bytes, subject: str) -> ProjectionEvent | None:
    """The event when every check of `parse_event` passes on the fast path; None to take the full path."""
    if len(raw) > MAX_EVENT_BYTES:
        return None
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH or _SURROGATE_ESCAPE.search(raw) is not None:
        return None
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (RecursionError, ValueError):
        return None
    if not isinstance(body, dict) or any(name not in body for name in REQUIRED_ATTRIBUTES):
        return None
    if body["specversion"] != "1.0" or not isinstance(body["type"], str):
        return None
    spec = BY_TYPE.get(body["type"])
    if spec is None or spec.contact:
        return None
    try:
        event = envelope_of(spec.model).model_validate(body)
    except ValidationError:
        return None
    parts = _event_subject(subject)
    if parts is None or parts.name != spec.name or parts.major != spec.major:
        return None
    if parts.institution != str(getattr(event.data, "institution", "")):
        return None
    # what `projection_event` returns: the type is not a contact one and `data` is a `spec.model`
    return ProjectionEvent(event.id, event.data, event.time, event.source)
