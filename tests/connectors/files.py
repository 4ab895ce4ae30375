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


def make_docx(title: str, blocks: list[tuple[int, str, str]],
              tables: dict[int, list[list[str]]] | None = None) -> bytes:
    """`tables` maps a block's position to rows placed right after that block's paragraph."""
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.add_heading(title, level=0)
    for position, (level, heading, text) in enumerate(blocks):
        document.add_heading(heading, level=level)
        document.add_paragraph(text)
        rows = (tables or {}).get(position)
        if rows:
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for row, values in zip(table.rows, rows, strict=True):
                for cell, value in zip(row.cells, values, strict=True):
                    cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_docx_bomb(filler: bytes, megabytes: int) -> bytes:
    """A real DOCX whose document.xml gains `megabytes` MiB of a repeated filler paragraph, compressed about
    1000:1: tens of kilobytes on disk. Written in pieces, so building it needs little memory."""
    import zipfile

    base = make_docx("Quarterly numbers", [(1, "Numbers", "Revenue grew in the third quarter.")])
    out = io.BytesIO()
    paragraph = b"<w:p><w:r><w:t xml:space=\"preserve\">" + filler + b"</w:t></w:r></w:p>"
    piece = paragraph * (64 * 1024 // len(paragraph) + 1)
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in source.infolist():
            data = source.read(info)
            if info.filename != "word/document.xml":
                bomb.writestr(info, data)
                continue
            head, tail = data.split(b"<w:sectPr", 1)
            part_info = zipfile.ZipInfo("word/document.xml", date_time=info.date_time)
            part_info.compress_type = zipfile.ZIP_DEFLATED
            with bomb.open(part_info, "w", force_zip64=True) as part:
                part.write(head)
                for _ in range(megabytes * 1024 * 1024 // len(piece)):
                    part.write(piece)
                part.write(b"<w:sectPr" + tail)
    return out.getvalue()
