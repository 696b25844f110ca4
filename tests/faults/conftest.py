"""The chaos suite runs only under `make faults` (IIOE_FAULTS=1): it starts whole platforms and takes minutes.

At the end of the session it writes its results table into docs/reliability.md (between the
`faults:begin` / `faults:end` markers) and each scenario's ledger to `.iioe/faults/<scenario>.json`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.faults.harness import Result

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"

if os.environ.get("IIOE_FAULTS") != "1":
    collect_ignore_glob = ["test_*.py"]


def table(results: list[Result]) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Last run: {stamp}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
        " (`make faults`; written by the suite itself).",
        "",
        "| scenario | events | acked | lost | duplicated | dead letters (good / poison) | world failures / pauses "
        "| recovery s | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.events} | {r.acknowledged} | {r.lost} | {r.duplicated}"
            f"{f' (mails {r.duplicated_mails})' if r.duplicated_mails else ''} "
            f"| {r.dead_letters_good} / {r.dead_letters_poison} (poison sent: {r.poison}) "
            f"| {r.world_failures} / {r.pauses} | {r.recovery_seconds:.1f} "
            f"| {verdict(r)}{' — ' + r.notes if r.notes else ''} |"
        )
    return "\n".join(lines)


def verdict(r: Result) -> str:
    if r.ok:
        return "pass"
    return f"FAIL{f' ({r.dead_tasks} background task(s) died)' if r.dead_tasks else ''}"


@pytest.fixture(scope="session")
def results() -> Iterator[list[Result]]:
    collected: list[Result] = []
    yield collected
    if not collected or not DOC.exists():
        return
    text = DOC.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        DOC.write_text(f"{head}{BEGIN}\n{table(collected)}\n{END}{tail}")


@pytest.fixture
def ledger_dir() -> Path:
    path = ROOT / ".iioe" / "faults"
    path.mkdir(parents=True, exist_ok=True)
    return path
