"""CSV import (streamed, record by record) of educators and of course completions, and CSV/XLSX export
of educators. No I/O of its own: bytes in, rows out; rows in, bytes out (the export format itself is
`iioe.runtime.exports`)."""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any

from iioe.commands import CommandRejected
from iioe.runtime import exports
from iioe.runtime.exports import safe_cell

__all__ = [
    "COMPLETION_COLUMNS",
    "COMPLETION_REQUIRED_COLUMNS",
    "EXPORT_COLUMNS",
    "IMPORT_COLUMNS",
    "ImportTooLarge",
    "csv_rows",
    "safe_cell",
    "to_csv",
    "to_xlsx",
]

IMPORT_COLUMNS = ("full_name", "email", "language", "role", "registered_at")
REQUIRED_COLUMNS = ("full_name", "email", "language")
COMPLETION_COLUMNS = ("educator_id", "course_id", "score", "completed_at", "language")
COMPLETION_REQUIRED_COLUMNS = ("educator_id", "course_id", "score", "completed_at")
EXPORT_COLUMNS = ("educator_id", "institution", "full_name", "email", "language", "role", "registered_at")
_LINES = re.compile(r"(?<=\n)")


class ImportTooLarge(CommandRejected):
    """The CSV grew past the import's byte or row limit (HTTP 413); rows before it were handled."""

    def __init__(self, message: str) -> None:
        super().__init__("payload_too_large", message)


async def csv_rows(
    chunks: AsyncIterable[bytes],
    *,
    max_bytes: int,
    max_rows: int,
    columns: Sequence[str] = IMPORT_COLUMNS,
    required: Sequence[str] = REQUIRED_COLUMNS,
) -> AsyncIterator[tuple[int, dict[str, str]]]:
    """(record number, {column: value}) for each data record of a UTF-8 CSV body, as it arrives.

    The first record is the header (row 1; it must name the `required` columns, the others of
    `columns` are optional, unknown ones ignored — by default the educator import's: `full_name`,
    `email`, `language` required, `role` and `registered_at` optional); blank records are skipped
    but counted. A record ends at a line break outside quotes, so quoted fields may span lines
    (RFC 4180)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    header: list[str] | None = None
    pending = ""  # text of the record being read (possibly several lines of a quoted field)
    buffer = ""
    received = 0
    number = 0

    def records(text: str, final: bool) -> tuple[list[str], str]:
        """Complete records in `pending + text`; the incomplete rest."""
        nonlocal pending
        done: list[str] = []
        lines = [line for line in _LINES.split(text) if line]
        rest = ""
        if lines and not final and not lines[-1].endswith("\n"):
            rest = lines.pop()
        for line in lines:
            pending += line
            if pending.count('"') % 2 == 0:  # outside quotes: "" inside a field counts twice
                done.append(pending)
                pending = ""
        if final and pending:
            done.append(pending)
            pending = ""
        return done, rest

    async def source() -> AsyncIterator[tuple[str, bool]]:
        nonlocal received
        async for chunk in chunks:
            received += len(chunk)
            if received > max_bytes:
                raise ImportTooLarge(f"the CSV exceeds the import limit of {max_bytes} bytes")
            try:
                yield decoder.decode(chunk), False
            except UnicodeDecodeError:
                raise CommandRejected("invalid_encoding", "the CSV must be UTF-8") from None
        try:
            yield decoder.decode(b"", final=True), True
        except UnicodeDecodeError:
            raise CommandRejected("invalid_encoding", "the CSV must be UTF-8") from None

    async for text, final in source():
        done, buffer = records(buffer + text, final)
        for record in done:
            number += 1
            try:
                fields = next(csv.reader([record]), [])
            except csv.Error as exc:  # e.g. a bare carriage return inside an unquoted field
                raise CommandRejected("invalid_csv", f"record {number} is not valid CSV: {exc}") from None
            if header is None:
                header = [name.strip().lower() for name in fields]
                missing = [c for c in required if c not in header]
                if missing:
                    raise CommandRejected(
                        "invalid_csv_header", f"the header row must name the columns {', '.join(missing)}"
                    )
                continue
            if not any(value.strip() for value in fields):
                continue
            if number - 1 > max_rows:
                raise ImportTooLarge(f"the CSV exceeds the import limit of {max_rows} rows")
            values = {name: value.strip() for name, value in zip(header, fields, strict=False)}
            yield number, {name: values.get(name, "") for name in columns}
    if header is None:
        raise CommandRejected("invalid_csv_header", "the CSV is empty: a header row is required")


def to_csv(rows: Iterable[Sequence[Any]], columns: Sequence[str] = EXPORT_COLUMNS) -> bytes:
    return exports.to_csv(columns, rows)


def to_xlsx(rows: Iterable[Sequence[Any]], columns: Sequence[str] = EXPORT_COLUMNS) -> bytes:
    return exports.to_xlsx(columns, rows, sheet="educators")
