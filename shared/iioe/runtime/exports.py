"""CSV and XLSX exports every service writes the same way: formula-safe cells, UTF-8 with a BOM, streamed.

Cells that a spreadsheet program would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return at the
start) get a leading `'`, so `=HYPERLINK(…)` in a value stays text (OWASP "CSV injection"). CSV is streamed
as it is produced; XLSX (a ZIP) is assembled in a spooled temporary file and then streamed in chunks.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, Literal

from fastapi.responses import StreamingResponse
from openpyxl import Workbook

__all__ = [
    "CSV_MEDIA_TYPE",
    "XLSX_MEDIA_TYPE",
    "ExportFormat",
    "csv_stream",
    "export_response",
    "safe_cell",
    "to_csv",
    "to_xlsx",
    "xlsx_stream",
]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "CSV (UTF-8 with BOM) or XLSX, as `format` asks",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
"""The OpenAPI `responses=` of an export route (so clients and schemathesis know both formats)."""


ExportFormat = Literal["csv", "xlsx"]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_BYTES = 64 * 1024
_SPOOL_BYTES = 8 * 1024 * 1024
"""An XLSX up to this size stays in memory; a larger one goes to a temporary file."""


def safe_cell(value: Any) -> Any:
    """A value that no spreadsheet runs as a formula (`=HYPERLINK(…)` in a name stays text)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_line(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(v) for v in values])
    return out.getvalue()


def to_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """The whole CSV at once (UTF-8 with a BOM, so spreadsheet programs read it as UTF-8)."""
    return ("\ufeff" + _csv_line(columns) + "".join(_csv_line(row) for row in rows)).encode("utf-8")


def to_xlsx(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, sheet: str = "export") -> bytes:
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.append(list(columns))
    for row in rows:
        worksheet.append([safe_cell(v) for v in row])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def csv_stream(columns: Sequence[str], rows: AsyncIterable[Sequence[Any]]) -> AsyncIterator[bytes]:
    """The CSV as chunks of about `CHUNK_BYTES`, the header (with the BOM) first."""
    buffer = ["\ufeff" + _csv_line(columns)]
    size = len(buffer[0])
    async for row in rows:
        line = _csv_line(row)
        buffer.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


async def xlsx_stream(
    columns: Sequence[str], rows: AsyncIterable[Sequence[Any]], *, sheet: str = "export"
) -> AsyncIterator[bytes]:
    """The workbook, written row by row (openpyxl's write-only mode), then sent in chunks."""
    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(sheet)
    worksheet.append(list(columns))
    async for row in rows:
        worksheet.append([safe_cell(v) for v in row])
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        workbook.save(spool)
        spool.seek(0)
        while chunk := spool.read(CHUNK_BYTES):
            yield chunk


def export_response(
    format: ExportFormat,
    columns: Sequence[str],
    rows: AsyncIterable[Sequence[Any]],
    *,
    filename: str,
    sheet: str = "export",
) -> StreamingResponse:
    """A streamed download named `<filename>.<format>`."""
    if format == "xlsx":
        body, media = xlsx_stream(columns, rows, sheet=sheet), XLSX_MEDIA_TYPE
    else:
        body, media = csv_stream(columns, rows), CSV_MEDIA_TYPE
    safe_name = re.sub(r"[^A-Za-z0-9._-]", "_", filename)[:100]  # a header is latin-1: never echo input
    headers = {"content-disposition": f'attachment; filename="{safe_name}.{format}"'}
    return StreamingResponse(body, media_type=media, headers=headers)
