"""The dated report as CSV (one header row, one row per breakdown entry) and as PDF (fpdf2).

Aggregates only: codes, institution names and counts — never a person's name or e-mail.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fpdf import FPDF

from services.analytics.models import DatedReport, ReportCounts

CSV_COLUMNS = (
    "as_of",
    "breakdown",
    "key",
    "name",
    "registered",
    "completed_programme",
    "certified",
    "master_teachers",
    "credits_recognised",
    "trainees_reached",
    "integrating_ai",
    "completed_and_integrating",
    "practice_share",
    "sessions",
    "certificates_active",
    "course_educators",
    "course_completions",
)
COUNT_COLUMNS = CSV_COLUMNS[4:13]

NEXT_LINE: dict[str, Any] = {"new_x": "LMARGIN", "new_y": "NEXT"}
PDF_FONT_ENV = "IIOE_PDF_FONT"
"""A TrueType font with Cyrillic (its bold face beside it as `*-Bold.ttf`) when the defaults are absent."""
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
)

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "IIOE micro-certification — report as of {as_of}",
        "subtitle": "State at the end of the day ({tz}); generated {generated}. Aggregates only.",
        "totals": "Totals",
        "institution": "By institution",
        "type": "By type (public / private)",
        "city": "By city",
        "language": "By registration language",
        "region": "Cascade training by region",
        "programme": "Active certificates by programme",
        "key": "",
        "registered": "Registered",
        "completed_programme": "Completed",
        "certified": "Certified",
        "master_teachers": "Master t.",
        "credits_recognised": "Credits",
        "trainees_reached": "Trainees",
        "integrating_ai": "AI in practice",
        "practice_share": "Share",
        "sessions": "Sessions",
        "certificates_active": "Active",
        "cascade": "Cascade: {sessions} sessions, {trainees} trainees reached",
        "tier": "tier",
        "course_language": "By course language (first completions)",
        "course_educators": "Educators",
        "course_completions": "Courses completed",
        "type_public": "public",
        "type_private": "private",
    },
    "mn": {
        "title": "IIOE бичил гэрчилгээ — {as_of}-ны байдлаарх тайлан",
        "subtitle": "Өдрийн төгсгөл дэх байдал ({tz}); үүсгэсэн {generated}. Зөвхөн нэгтгэсэн тоо.",
        "totals": "Нийт",
        "institution": "Байгууллагаар",
        "type": "Өмчийн хэлбэрээр (төрийн / хувийн)",
        "city": "Хотоор",
        "language": "Бүртгэлийн хэлээр",
        "region": "Мастер багшийн сургалт бүсээр",
        "programme": "Хүчинтэй гэрчилгээ хөтөлбөрөөр",
        "key": "",
        "registered": "Бүртгүүлсэн",
        "completed_programme": "Дүүргэсэн",
        "certified": "Гэрчилгээтэй",
        "master_teachers": "Мастер багш",
        "credits_recognised": "Кредит",
        "trainees_reached": "Хамрагдсан",
        "integrating_ai": "ХО ашигладаг",
        "practice_share": "Хувь",
        "sessions": "Сургалт",
        "certificates_active": "Хүчинтэй",
        "cascade": "Мастер багшийн сургалт: {sessions} сургалт, {trainees} багш хамрагдсан",
        "tier": "түвшин",
        "course_language": "Сургалтын хэлээр (анх дүүргэсэн)",
        "course_educators": "Багш",
        "course_completions": "Дүүргэсэн сургалт",
        "type_public": "төрийн",
        "type_private": "хувийн",
    },
    "ru": {
        "title": "Микросертификация IIOE — отчёт на {as_of}",
        "subtitle": "Состояние на конец дня ({tz}); создан {generated}. Только агрегаты.",
        "totals": "Итого",
        "institution": "По вузам",
        "type": "По форме собственности (государственные / частные)",
        "city": "По городам",
        "language": "По языку регистрации",
        "region": "Каскадное обучение по регионам",
        "programme": "Действующие сертификаты по программам",
        "key": "",
        "registered": "Зарег.",
        "completed_programme": "Прошли",
        "certified": "С сертиф.",
        "master_teachers": "Мастера",
        "credits_recognised": "Кредиты",
        "trainees_reached": "Обучено",
        "integrating_ai": "ИИ в практике",
        "practice_share": "Доля",
        "sessions": "Занятия",
        "certificates_active": "Действ.",
        "cascade": "Каскад: занятий {sessions}, обучено {trainees}",
        "tier": "уровень",
        "course_language": "По языку курса (первое прохождение)",
        "course_educators": "Преподаватели",
        "course_completions": "Пройдено курсов",
        "type_public": "государственные",
        "type_private": "частные",
    },
}


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _count_cells(counts: ReportCounts) -> dict[str, Any]:
    return {k: getattr(counts, k) for k in COUNT_COLUMNS}


def csv_rows(report: DatedReport) -> Iterator[dict[str, Any]]:
    base = {"as_of": report.as_of.isoformat()}
    yield (
        base
        | {"breakdown": "total", "key": "all"}
        | _count_cells(report.totals)
        | {"sessions": report.cascade.sessions}
    )
    for breakdown, groups in (
        ("institution", report.by_institution),
        ("type", report.by_type),
        ("city", report.by_city),
        ("language", report.by_language),
    ):
        for g in groups:
            yield base | {"breakdown": breakdown, "key": g.key, "name": g.name or ""} | _count_cells(g)
    for r in report.by_region:
        yield base | {"breakdown": "region", "key": r.region, "sessions": r.sessions, "trainees_reached": r.trainees}
    for p in report.by_programme:
        yield base | {"breakdown": "programme", "key": p.programme_id, "certificates_active": p.certificates_active}
    for cl in report.by_course_language:
        yield base | {
            "breakdown": "course_language",
            "key": cl.language,
            "course_educators": cl.educators,
            "course_completions": cl.course_completions,
        }
    for tier in report.by_tier:
        yield base | {"breakdown": "tier", "key": tier.tier, "certificates_active": tier.certificates_active}


def to_csv(report: DatedReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in csv_rows(report):
        writer.writerow({k: _number(row.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()


def _unicode_font() -> Path | None:
    for candidate in (os.environ.get(PDF_FONT_ENV), *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class _ReportPdf(FPDF):
    def __init__(self, font: Path | None) -> None:
        super().__init__(orientation="landscape", format="A4")
        self.unicode = font is not None
        if font is not None:
            bold = font.with_name(font.stem.replace("-Regular", "") + "-Bold.ttf")
            self.add_font("report", "", str(font))
            self.add_font("report", "B", str(bold if bold.is_file() else font))
            self.family_name = "report"
        else:
            self.family_name = "helvetica"

    def text_of(self, text: str) -> str:
        """Core fonts hold Latin-1 only: without a Unicode font other letters become '?'."""
        return text if self.unicode else text.encode("latin-1", "replace").decode("latin-1")


def to_pdf(report: DatedReport, language: str = "en") -> bytes:
    """A4 landscape: title, totals and every breakdown as tables."""
    font = _unicode_font()
    labels = LABELS.get(language if font is not None else "en", LABELS["en"])
    pdf = _ReportPdf(font)
    pdf.set_title(f"IIOE report {report.as_of.isoformat()}")
    pdf.set_author("IIOE analytics")
    pdf.add_page()
    pdf.set_font(pdf.family_name, "B", 15)
    pdf.multi_cell(0, 8, pdf.text_of(labels["title"].format(as_of=report.as_of.isoformat())), **NEXT_LINE)
    pdf.set_font(pdf.family_name, "", 9)
    generated = report.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    pdf.multi_cell(0, 5, pdf.text_of(labels["subtitle"].format(tz=report.timezone, generated=generated)), **NEXT_LINE)
    pdf.ln(2)
    pdf.multi_cell(
        0,
        5,
        pdf.text_of(labels["cascade"].format(sessions=report.cascade.sessions, trainees=report.cascade.trainees)),
        **NEXT_LINE,
    )
    columns = (
        "registered",
        "completed_programme",
        "certified",
        "master_teachers",
        "credits_recognised",
        "trainees_reached",
        "integrating_ai",
        "practice_share",
    )

    def section(title: str) -> None:
        if pdf.get_y() > pdf.h - 45:  # never a heading alone at the foot of a page
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font(pdf.family_name, "B", 11)
        pdf.cell(0, 7, pdf.text_of(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(pdf.family_name, "", 8)

    def table(head: list[str], rows: list[list[str]], first_width: float) -> None:
        rest = (pdf.epw - first_width) / max(1, len(head) - 1)
        widths = (first_width, *([rest] * (len(head) - 1)))
        with pdf.table(col_widths=widths, text_align=("LEFT", *(["RIGHT"] * (len(head) - 1))), line_height=5) as t:
            header = t.row()
            for cell in head:
                header.cell(pdf.text_of(cell))
            for values in rows:
                row = t.row()
                for cell in values:
                    row.cell(pdf.text_of(cell))

    def counts_row(key: str, counts: ReportCounts) -> list[str]:
        cells = [key]
        for c in columns:
            value = getattr(counts, c)
            cells.append(f"{value * 100:.1f}%" if c == "practice_share" else _number(value) or "—")
        return cells

    head = ["", *(labels[c] for c in columns)]
    section(labels["totals"])
    table(head, [counts_row("", report.totals)], 70)
    for key, groups in (
        ("institution", report.by_institution),
        ("type", report.by_type),
        ("city", report.by_city),
        ("language", report.by_language),
    ):
        if not groups:
            continue
        section(labels[key])
        rows = [counts_row(f"{g.key} · {g.name}" if g.name else labels.get(f"{key}_{g.key}", g.key), g) for g in groups]
        table(head, rows, 70)
    if report.by_course_language:
        section(labels["course_language"])
        rows = [[cl.language, str(cl.educators), str(cl.course_completions)] for cl in report.by_course_language]
        table(["", labels["course_educators"], labels["course_completions"]], rows, 120)
    if report.by_region:
        section(labels["region"])
        rows = [[r.region, str(r.sessions), str(r.trainees)] for r in report.by_region]
        table(["", labels["sessions"], labels["trainees_reached"]], rows, 120)
    if report.by_programme:
        section(labels["programme"])
        rows = [[p.programme_id, str(p.certificates_active)] for p in report.by_programme]
        rows += [[f"{labels['tier']}: {tier.tier}", str(tier.certificates_active)] for tier in report.by_tier]
        table(["", labels["certificates_active"]], rows, 120)
    return bytes(pdf.output())
