"""JSON Schema snapshots of every v1 event and the additive-only compatibility rule.

`python -m iioe.schemas --write` refreshes `shared/schemas/`; the contract test fails when a
change is not additive (a field removed or retyped, a new required field, an enum narrowed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iioe.envelope import CloudEvent
from iioe.events import ALL_EVENTS

SNAPSHOT_DIR = Path(__file__).resolve().parents[1] / "schemas"


def current_schemas() -> dict[str, dict[str, Any]]:
    """The full CloudEvent schema of each event type, keyed by type."""
    return {spec.type: CloudEvent[spec.model].model_json_schema() for spec in ALL_EVENTS}  # type: ignore[name-defined]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(schema, schema["$defs"][ref.removeprefix("#/$defs/")])
    return node


def _kinds(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        return set().union(*(_kinds(schema, n) for n in node["anyOf"]))
    if "const" in node:
        return {json.dumps(node["const"])}
    if "enum" in node:
        return {json.dumps(v) for v in node["enum"]}
    return {str(node.get("type", "any"))}


def compatibility_problems(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """Why `new` would break a reader or writer of `old` (empty when the change is additive)."""
    problems: list[str] = []
    old_props = old.get("properties", {})
    new_props = new.get("properties", {})
    for name, old_node in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"{where}: field removed")
            continue
        old_kinds, new_kinds = _kinds(old, old_node), _kinds(new, new_props[name])
        if not old_kinds <= new_kinds:
            problems.append(f"{where}: accepted values narrowed from {sorted(old_kinds)} to {sorted(new_kinds)}")
        old_obj, new_obj = _resolve(old, old_node), _resolve(new, new_props[name])
        if "properties" in old_obj and "properties" in new_obj:
            nested_old = {**old_obj, "$defs": old.get("$defs", {})}
            nested_new = {**new_obj, "$defs": new.get("$defs", {})}
            problems += compatibility_problems(nested_old, nested_new, f"{where}.")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"{path}{name}: new required field")
    return problems


def snapshot_path(event_type: str, directory: Path = SNAPSHOT_DIR) -> Path:
    return directory / f"{event_type}.json"


def write_snapshots(directory: Path = SNAPSHOT_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in current_schemas().items():
        path = snapshot_path(event_type, directory)
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description="Write or check the event schema snapshots")
    parser.add_argument("--write", action="store_true", help="refresh the snapshots (after an additive change)")
    args = parser.parse_args()
    if args.write:
        for path in write_snapshots():
            print(f"wrote {path}")
        return
    failed = False
    for event_type, schema in current_schemas().items():
        path = snapshot_path(event_type)
        if not path.exists():
            print(f"{event_type}: no snapshot (new type) — run with --write")
            continue
        for problem in compatibility_problems(json.loads(path.read_text(encoding="utf-8")), schema):
            failed = True
            print(f"{event_type}: {problem}")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
