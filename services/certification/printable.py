"""The printable certificate: one A4 landscape page in Mongolian and English, with the QR code of the public
verification page, made with fpdf2.

The text needs a font that covers Cyrillic: DejaVu Sans (Debian `fonts-dejavu-core`,
/usr/share/fonts/truetype/dejavu), or the directory named by `IIOE_PDF_FONT_DIR` holding `DejaVuSans.ttf`
and `DejaVuSans-Bold.ttf`. fpdf2 embeds the subset of glyphs used, so the PDF shows the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import segno
from fpdf import FPDF

from services.certification.i18n import words

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
STATUS_COLOURS = {"active": (31, 122, 61), "suspended": (161, 92, 0), "revoked": (179, 38, 30)}
INK, MUTED, FRAME = (29, 39, 51), (91, 103, 117), (11, 92, 173)


class FontMissing(RuntimeError):
    """No Cyrillic-capable font: install `fonts-dejavu-core` or set `IIOE_PDF_FONT_DIR`."""


def font_dir() -> Path:
    configured = os.environ.get("IIOE_PDF_FONT_DIR")
    for directory in ((Path(configured),) if configured else ()) + FONT_DIRS:
        if all((directory / name).is_file() for name in FONT_FILES.values()):
            return directory
    raise FontMissing("no DejaVu Sans fonts: install fonts-dejavu-core or set IIOE_PDF_FONT_DIR")


def render(mn: dict[str, Any], en: dict[str, Any]) -> bytes:
    """The PDF of one certificate from the Mongolian and English views of `pages.verification_context`."""
    fonts = font_dir()
    t_mn, t_en = words("mn"), words("en")
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_creator("IIOE certification service")
    pdf.set_title(f"{en['programme_name']} — {en['certificate_id']}")
    pdf.set_author(en["issuer_name"])
    for style, name in FONT_FILES.items():
        pdf.add_font("DejaVu", style, str(fonts / name))
    pdf.set_auto_page_break(False)
    pdf.add_page()
    width, height = pdf.w, pdf.h

    pdf.set_draw_color(*FRAME)
    pdf.set_line_width(1.2)
    pdf.rect(8, 8, width - 16, height - 16)
    pdf.set_line_width(0.3)
    pdf.rect(11, 11, width - 22, height - 22)

    pdf.set_text_color(*MUTED)
    pdf.set_font("DejaVu", "", 11)
    pdf.set_xy(20, 18)
    pdf.cell(width - 40, 6, en["issuer_name"], align="C")
    pdf.set_text_color(*FRAME)
    pdf.set_font("DejaVu", "B", 26)
    pdf.set_xy(20, 27)
    pdf.cell(width - 40, 12, f"{t_mn['certificate'].upper()} · {t_en['certificate'].upper()}", align="C")

    pdf.set_text_color(*INK)
    pdf.set_font("DejaVu", "B", 19)
    pdf.set_xy(20, 45)
    pdf.multi_cell(width - 40, 9, mn["programme_name"], align="C")
    pdf.set_font("DejaVu", "", 15)
    pdf.set_x(20)
    pdf.multi_cell(width - 40, 8, en["programme_name"], align="C")

    rows = [
        (t_mn["holder"], t_en["holder"], f"{t_mn['name_hidden']}\n{t_en['name_hidden']}"),
        (t_mn["tier"], t_en["tier"], f"{mn['tier']} / {en['tier']}"),
        (
            t_mn["courses"],
            t_en["courses"],
            "\n".join(f"• {a}\n   {b}" for a, b in zip(mn["courses"], en["courses"], strict=True)),
        ),
        (t_mn["credits"], t_en["credits"], f"{en['credits']} {en['credit_system']}"),
        (t_mn["framework"], t_en["framework"], en["framework"]),
        (t_mn["issued_on"], t_en["issued_on"], en["issued_on"]),
        (t_mn["certificate_id"], t_en["certificate_id"], en["certificate_id"]),
    ]
    y = max(pdf.get_y() + 6, 72)
    label_w, value_x, value_w = 62, 86, width - 86 - 80
    for label_mn, label_en, value in rows:
        pdf.set_xy(22, y)
        pdf.set_text_color(*MUTED)
        pdf.set_font("DejaVu", "", 9)
        pdf.multi_cell(label_w, 4.6, f"{label_mn}\n{label_en}", align="L")
        label_bottom = pdf.get_y()
        pdf.set_xy(value_x, y)
        pdf.set_text_color(*INK)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(value_w, 4.6, value, align="L")
        y = max(label_bottom, pdf.get_y()) + 2.5

    status = en["status"]
    pdf.set_xy(22, y + 1)
    pdf.set_text_color(*STATUS_COLOURS.get(status, INK))
    pdf.set_font("DejaVu", "B", 12)
    line = f"{t_mn['status']} / {t_en['status']}: {mn_status(mn)} / {words('en')[status]}"
    if en["reason"] and status != "active":
        line += f" — {en['reason']} ({en['since']})"
    pdf.multi_cell(width - 44 - 80, 6, line, align="L")

    _qr(pdf, en["page_url"], x=width - 76, y=height - 92, size=56)
    pdf.set_text_color(*MUTED)
    pdf.set_font("DejaVu", "", 7.5)
    pdf.set_xy(width - 170, height - 33)
    pdf.multi_cell(152, 3.8, f"{t_mn['verify_at']} / {t_en['verify_at']}:\n{en['page_url']}", align="R")
    pdf.set_xy(22, height - 22)
    pdf.multi_cell(
        width - 44,
        3.8,
        "Open Badges 3.0 · W3C Verifiable Credential (VC-JWT, Ed25519) · JWKS: /.well-known/jwks.json",
        align="L",
    )
    return bytes(pdf.output())


def mn_status(mn: dict[str, Any]) -> str:
    return words("mn")[mn["status"]]


def _qr(pdf: FPDF, url: str, *, x: float, y: float, size: float) -> None:
    """The QR code drawn as vector squares (crisp at any print size)."""
    matrix = segno.make(url, error="m").matrix
    modules = len(matrix) + 8  # quiet zone of 4 on each side
    cell = size / modules
    pdf.set_fill_color(255, 255, 255)
    pdf.rect(x, y, size, size, style="F")
    pdf.set_fill_color(0, 0, 0)
    for row, bits in enumerate(matrix):
        for col, dark in enumerate(bits):
            if dark:
                pdf.rect(x + (col + 4) * cell, y + (row + 4) * cell, cell, cell, style="F")
