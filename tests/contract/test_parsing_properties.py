"""Property tests of the envelope parser (issue #9): it never raises anything but `InvalidEvent`
with a known reason, and every valid event of every type round-trips.

Valid `data` is generated from each type's own JSON Schema, so a new type is covered the day
it joins the catalogue. Bounded (200 examples, no deadline, no example database) to stay fast.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iioe.envelope import CloudEvent, make_event
from iioe.events import ALL_EVENTS, EventSpec
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason
from iioe.subjects import MAX_EVENT_BYTES

KNOWN_REASONS = set(Reason)
BOUNDED = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# extension values survive `to_json_bytes` (which drops None) only without null
extension_values = st.recursive(
    st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
RESERVED = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data", "dataschema"}
extensions = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9]{0,19}", fullmatch=True).filter(lambda k: k not in RESERVED),
    extension_values,
    max_size=3,
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
timestamps = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=offsets)
clean_text = st.text(min_size=1, max_size=60).filter(lambda s: s == s.strip() and s != "")


def _from_schema(schema: dict[str, Any], node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for the subset of JSON Schema that pydantic emits for event data."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _from_schema(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
    if "anyOf" in node:
        return st.one_of(*(_from_schema(schema, n) for n in node["anyOf"]))
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    kind = node.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "array":
        return st.lists(
            _from_schema(schema, node["items"]),
            min_size=node.get("minItems", 0),
            max_size=min(node.get("maxItems", 4), 4),
        )
    if kind == "string":
        if node.get("format") == "date-time":
            return timestamps.map(lambda t: t.isoformat())
        if node.get("format") == "date":
            return st.dates(date(1970, 1, 1), date(2100, 1, 1)).map(date.isoformat)
        lo, hi = node.get("minLength", 0), node.get("maxLength", 60)
        base = st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else clean_text
        return base.filter(lambda s: lo <= len(s) <= hi)
    raise AssertionError(f"no strategy for schema node {node}")


def _data(spec: EventSpec) -> st.SearchStrategy[dict[str, Any]]:
    schema = spec.model.model_json_schema()
    required = set(schema.get("required", []))
    fields: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, node in schema["properties"].items():
        (fields if name in required else optional)[name] = _from_schema(schema, node)
    return st.fixed_dictionaries(fields, optional=optional)


@st.composite
def valid_events(draw: st.DrawFn, specs: tuple[EventSpec, ...] = ALL_EVENTS) -> tuple[EventSpec, CloudEvent[Any], str]:
    spec = draw(st.sampled_from(specs))
    data = spec.model.model_validate(draw(_data(spec)))
    event = make_event(
        data,
        event_type=spec.type,
        source=draw(st.text(min_size=1, max_size=40)),
        subject=draw(st.none() | st.text(max_size=40)),
        event_id=draw(st.text(min_size=1, max_size=128)),
        time=draw(timestamps),
    )
    extra = draw(extensions)
    if extra:
        event = event.model_copy(update=extra)
    return spec, event, spec.subject(data.institution)  # type: ignore[attr-defined]


def _parse_or_invalid(raw: bytes, subject: str | None) -> tuple[EventSpec, CloudEvent[Any]] | None:
    """Parse, or check the rejection names a known reason; whatever is accepted can be written back and re-read."""
    try:
        spec, event = parse_event(raw, subject)
    except InvalidEvent as exc:
        assert exc.reason in KNOWN_REASONS
        return None
    again_spec, again = parse_event(event.to_json_bytes(), subject)
    assert again_spec is spec and again.data == event.data
    return spec, event


# JSON text that Python's json module reads with surprises: non-standard constants, integers
# past the 4300-digit conversion limit, overflowing floats, nesting past the recursion limit
hostile_fragments = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0.0", "0"]),
    st.sampled_from(['"\\ud800"', '"a\\uDFFFb"', '{"\\udbff": 1}', '["\\ud834\\udd1e"]', '"\\ud834\\udd1e"']),
    st.integers(4200, 5000).map(lambda digits: "9" * digits),
    st.tuples(st.integers(1, 3000), st.sampled_from(["[", '{"k":'])).map(
        lambda t: t[1] * t[0] + "0" + ("]" if t[1] == "[" else "}") * t[0]
    ),
)


# ---------------------------------------------------------------- properties


@BOUNDED
@given(raw=st.binary(max_size=512), subject=st.none() | st.text(max_size=60))
def test_arbitrary_bytes_are_parsed_or_rejected_with_a_known_reason(raw: bytes, subject: str | None) -> None:
    _parse_or_invalid(raw, subject)


@BOUNDED
@given(value=json_values)
def test_arbitrary_json_is_rejected_with_a_known_reason(value: Any) -> None:
    assert _parse_or_invalid(json.dumps(value).encode(), "iioe.events.must.course_completed.v1") is None


@BOUNDED
@given(depth=st.integers(1, MAX_EVENT_BYTES // 2), opener=st.sampled_from(["[", '{"a":']))
def test_deeply_nested_json_is_rejected_not_crashed(depth: int, opener: str) -> None:
    raw = (opener * depth).encode()[:MAX_EVENT_BYTES]
    assert _parse_or_invalid(raw, None) is None


@pytest.mark.parametrize("spec", ALL_EVENTS, ids=[spec.name for spec in ALL_EVENTS])
@settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_valid_events_of_every_type_round_trip(spec: EventSpec, data: st.DataObject) -> None:
    _, event, subject = data.draw(valid_events((spec,)))
    raw = event.to_json_bytes()
    parsed_spec, parsed = parse_event(raw, subject)
    assert parsed_spec is spec
    assert parsed.data == event.data
    assert parsed.model_dump() == event.model_dump()
    assert parsed.to_json_bytes() == raw


@BOUNDED
@given(generated=valid_events(), other=st.from_regex(r"[a-z0-9-]{2,32}", fullmatch=True))
def test_valid_events_on_another_institutions_subject_are_rejected(
    generated: tuple[EventSpec, CloudEvent[Any], str], other: str
) -> None:
    spec, event, _ = generated
    if other == event.data.institution:
        return
    try:
        parse_event(event.to_json_bytes(), spec.subject(other))
    except InvalidEvent as exc:
        assert exc.reason == Reason.SUBJECT_INSTITUTION_MISMATCH
    else:
        raise AssertionError("an event published on another institution's subject was accepted")


def mutated(event: CloudEvent[Any], level: str, index: int, new_key: str | None, value: Any, delete: bool) -> bytes:
    """`event` with one attribute (`level` "envelope") or data field ("data") deleted, replaced or added."""
    body = json.loads(event.to_json_bytes())
    target = body if level == "envelope" else body["data"]
    names = sorted(target)
    name = names[index % len(names)] if delete or new_key is None else new_key
    if delete:
        del target[name]
    else:
        target[name] = value
    return json.dumps(body).encode()


def with_hostile_fragment(sample: Path, where: str, index: int, fragment: str) -> tuple[bytes, str]:
    """A golden sample with raw `fragment` spliced in as an extension, a data field or an attribute's value;
    (bytes, subject)."""
    golden = json.loads(sample.read_text(encoding="utf-8"))
    event, subject = golden["event"], golden["subject"]
    if where == "extension":
        event["hostile"] = "@@"
    elif where == "data_extra":
        event["data"]["hostile"] = "@@"
    elif where == "data_field":
        event["data"][sorted(event["data"])[index % len(event["data"])]] = "@@"
    else:
        event[sorted(event)[index % len(event)]] = "@@"
    return json.dumps(event).replace('"@@"', fragment, 1).encode(), subject


@BOUNDED
@given(
    generated=valid_events(),
    level=st.sampled_from(["envelope", "data"]),
    index=st.integers(0, 20),
    new_key=st.none() | st.text(min_size=1, max_size=20),
    value=json_values,
    delete=st.booleans(),
)
def test_mutated_events_parse_or_are_rejected_with_a_known_reason(
    generated: tuple[EventSpec, CloudEvent[Any], str],
    level: str,
    index: int,
    new_key: str | None,
    value: Any,
    delete: bool,
) -> None:
    _, event, subject = generated
    _parse_or_invalid(mutated(event, level, index, new_key, value, delete), subject)


@BOUNDED
@given(
    sample=st.sampled_from(sorted((Path(__file__).parent / "golden").glob("*.json"))),
    where=st.sampled_from(["extension", "data_extra", "data_field", "envelope_field"]),
    index=st.integers(0, 20),
    fragment=hostile_fragments,
)
def test_hostile_json_is_rejected_with_a_known_reason_or_round_trips(
    sample: Path, where: str, index: int, fragment: str
) -> None:
    _parse_or_invalid(*with_hostile_fragment(sample, where, index, fragment))


def test_oversized_input_is_rejected_before_it_is_read() -> None:
    raw = b'{"data": "' + b"x" * MAX_EVENT_BYTES + b'"}'
    try:
        parse_event(raw)
    except InvalidEvent as exc:
        assert exc.reason == Reason.TOO_LARGE
    else:
        raise AssertionError("accepted an event over 64 KiB")
