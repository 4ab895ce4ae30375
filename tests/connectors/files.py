"""Builders for real files of each supported format, made at test time."""

from __future__ import annotations

import io


def make_pdf(title: str, blocks: list[tuple[str, str]]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title(title)
    pdf.add_page()
    for heading, text in blocks:
        pdf.set_font("Helvetica", "B", 16)
        pdf.multi_cell(0, 10, heading)
        pdf.ln(2)
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text)
        pdf.ln(6)
    return bytes(pdf.output())


def make_docx(title: str, blocks: list[tuple[int, str, str]]) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for level, heading, text in blocks:
        document.add_heading(heading, level=level)
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
