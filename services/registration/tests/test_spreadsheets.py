"""CSV import parsing (however the body is chunked) and CSV/XLSX export, without servers."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest
from openpyxl import load_workbook

from iioe.commands import CommandRejected
from services.registration.spreadsheets import ImportTooLarge, csv_rows, safe_cell, to_csv, to_xlsx

CSV = (
    "\ufefffull_name,Email,language,role,notes\r\n"
    '"Батын, Сарнай",sarnai@must.edu.mn,mn,master_teacher,"two\r\nlines ""quoted"""\r\n'
    "\r\n"
    "Dorj Bat,dorj@must.edu.mn,en\r\n"
).encode()


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def parse(data: bytes, size: int = 1 << 16, **limits: int) -> list[tuple[int, dict[str, str]]]:
    options = {"max_bytes": 1 << 20, "max_rows": 100, **limits}
    rows = csv_rows(chunked(data, size), max_bytes=options["max_bytes"], max_rows=options["max_rows"])
    return [row async for row in rows]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 16])
async def test_rows_are_the_same_however_the_body_is_chunked(size: int) -> None:
    rows = await parse(CSV, size)
    assert rows == [
        (
            2,
            {
                "full_name": "Батын, Сарнай",
                "email": "sarnai@must.edu.mn",
                "language": "mn",
                "role": "master_teacher",
                "registered_at": "",
            },
        ),
        (4, {"full_name": "Dorj Bat", "email": "dorj@must.edu.mn", "language": "en", "role": "", "registered_at": ""}),
    ]


async def test_a_last_line_without_a_line_break_is_a_row() -> None:
    rows = await parse(b"full_name,email,language\nA,a@x.mn,mn")
    assert [r[1]["email"] for r in rows] == ["a@x.mn"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "invalid_csv_header"),
        (b"name,email,language\nA,a@x.mn,mn\n", "invalid_csv_header"),
        (b"full_name,email,language\n\xff\xfe,a@x.mn,mn\n", "invalid_encoding"),
        (b"full_name,email,language\nA\rB,a@x.mn,mn\n", "invalid_csv"),  # was csv.Error: a 500 (tests/fuzz)
        ("\U000b0cfc\x92\x01\U000a8beb\r\xae!\xe6".encode(), "invalid_csv"),
    ],
)
async def test_bad_csv_is_refused_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(CommandRejected) as caught:
        await parse(data)
    assert caught.value.code == code


async def test_byte_and_row_limits_stop_the_stream() -> None:
    data = b"full_name,email,language\n" + b"".join(f"P{n},p{n}@x.mn,mn\n".encode() for n in range(50))
    seen: list[int] = []
    with pytest.raises(ImportTooLarge):
        async for number, _ in csv_rows(chunked(data, 10), max_bytes=200, max_rows=100):
            seen.append(number)
    assert 0 < len(seen) < 50  # rows before the limit were handed on, nothing after it
    with pytest.raises(ImportTooLarge) as caught:
        await parse(data, max_rows=10)
    assert "10 rows" in caught.value.message


def test_exported_values_never_run_as_formulas() -> None:
    assert safe_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert [safe_cell(v) for v in ("+1", "-1", "@a", "Sarnai", 3, None)] == ["'+1", "'-1", "'@a", "Sarnai", 3, None]


def test_csv_export_has_a_header_and_a_bom() -> None:
    data = to_csv([["edu-1", "must", "=cmd", "a@x.mn", "mn", "educator", "2025-01-01T00:00:00+00:00"]])
    assert data.startswith(b"\xef\xbb\xbf")
    header, row = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert header[:3] == ["educator_id", "institution", "full_name"] and row[2] == "'=cmd"


def test_xlsx_export_opens_with_a_spreadsheet_reader() -> None:
    data = to_xlsx([["edu-1", "must", "Батын Сарнай", "a@x.mn", "mn", "educator", "2025-01-01T00:00:00+00:00"]])
    sheet = load_workbook(io.BytesIO(data), read_only=True)["educators"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][0] == "educator_id" and rows[1][2] == "Батын Сарнай" and len(rows) == 2
