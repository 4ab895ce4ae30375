#!/usr/bin/env python3
"""Render the PDF and DOCX documents of the Citewise demo corpus from their sources.

The demo corpus (corpus/) describes Kestrel Robotics, a fictional ~400-person
robotics company. Its Markdown, plain-text and HTML documents are committed as
they are. Each PDF and DOCX document is rendered from a Markdown source file in
sources/, at the same relative path with ".md" appended:

    sources/policies/parental-leave.pdf.md   ->  corpus/policies/parental-leave.pdf
    sources/specs/powerdock-3-spec.docx.md   ->  corpus/specs/powerdock-3-spec.docx

Edit the source, never the binary, then regenerate and commit both:

    python connectors/demo/build_corpus.py            # (re)write the binaries
    python connectors/demo/build_corpus.py --verify   # ...and read each one back
    python connectors/demo/build_corpus.py --check    # exit 1 if any is out of date

Output is byte-for-byte reproducible (fixed creation dates, fixed zip
timestamps) for a given fpdf2 / python-docx version.
tests/connectors/test_demo_corpus.py fails when a committed binary's text
no longer matches what its source renders to.

Requires: fpdf2, python-docx (and pypdf for --verify).

Source format (a small Markdown subset):
    # / ## / ###   headings (levels 1-3); the first one is the document title
    - item         bulleted list item
    1. item        numbered list item
    | a | b |      table row (first row is the header; |---| rows are skipped)
    *text*         a whole-line italic paragraph (document metadata)
    **bold**       inline bold
    4-space indent a line of code (monospace)
    anything else  paragraph text (consecutive lines are joined)
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import zipfile
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
CORPUS_DIR = DEMO_DIR / "corpus"
SOURCES_DIR = DEMO_DIR / "sources"
FORMATS = (".pdf", ".docx")

# Fixed timestamp so the generated files are byte-for-byte reproducible.
FIXED_DATE = dt.datetime(2025, 6, 1, 9, 0, 0, tzinfo=dt.UTC)
AUTHOR = "Kestrel Robotics (fictional demo data)"


def sources() -> dict[str, Path]:
    """Map each rendered document's path relative to corpus/ to its source file."""
    found = {}
    for path in sorted(SOURCES_DIR.rglob("*.md")):
        relpath = path.relative_to(SOURCES_DIR).with_suffix("").as_posix()
        if not relpath.endswith(FORMATS):
            raise SystemExit(f"{path}: a source is named <document>.pdf.md or <document>.docx.md")
        found[relpath] = path
    return found


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------

# Characters outside Latin-1 cannot be drawn with the PDF core fonts.
_ASCII_FIXUPS = {
    "\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'",
    "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u2022": "-",
}


def _clean(text: str) -> str:
    for bad, good in _ASCII_FIXUPS.items():
        text = text.replace(bad, good)
    return text


def parse(source: str) -> list[tuple]:
    """Turn the Markdown subset into a list of blocks.

    Blocks: ("heading", level, text), ("para", text), ("meta", text),
    ("bullet", text), ("number", text), ("code", text), ("table", rows).
    """
    blocks: list[tuple] = []
    para: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if para:
            blocks.append(("para", " ".join(para)))
            para.clear()
        if table:
            blocks.append(("table", [row[:] for row in table]))
            table.clear()

    for raw in _clean(source).strip("\n").splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            flush()
            continue
        if stripped.startswith("|"):
            if para:
                blocks.append(("para", " ".join(para)))
                para.clear()
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells):
                continue
            table.append(cells)
            continue
        if table:
            flush()
        heading = re.match(r"^(#{1,3}) (.+)$", stripped)
        if heading:
            flush()
            blocks.append(("heading", len(heading.group(1)), heading.group(2)))
        elif line.startswith("    "):
            flush()
            blocks.append(("code", stripped))
        elif stripped.startswith("- "):
            flush()
            blocks.append(("bullet", stripped[2:]))
        elif re.match(r"^\d+\. ", stripped):
            flush()
            blocks.append(("number", re.sub(r"^\d+\. ", "", stripped)))
        elif re.fullmatch(r"\*[^*].*[^*]\*", stripped):
            flush()
            blocks.append(("meta", stripped[1:-1]))
        else:
            para.append(stripped)
    flush()
    return blocks


def _segments(text: str) -> list[tuple[str, bool]]:
    """Split "a **b** c" into [("a ", False), ("b", True), (" c", False)]."""
    parts = text.split("**")
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]


def _plain(text: str) -> str:
    return text.replace("**", "")


# ---------------------------------------------------------------------------
# PDF (fpdf2)
# ---------------------------------------------------------------------------

def build_pdf(source: str, title: str) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF(format="Letter")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_title(title)
    pdf.set_author(AUTHOR)
    pdf.set_creator("connectors/demo/build_corpus.py")
    pdf.set_margins(20, 18, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    width = pdf.epw
    heading_sizes = {1: 18, 2: 14, 3: 12}
    number = 0

    def text_block(text: str, size: float = 10.5, style: str = "", indent: float = 0.0,
                   prefix: str = "") -> None:
        pdf.set_font("Helvetica", style, size)
        pdf.set_x(pdf.l_margin + indent)
        markdown = "**" in text and "B" not in style
        body = prefix + (text if markdown else _plain(text))
        pdf.multi_cell(width - indent, size * 0.5, body, markdown=markdown,
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    for block in parse(source):
        kind = block[0]
        if kind != "number":
            number = 0
        if kind == "heading":
            level, text = block[1], _plain(block[2])
            pdf.ln(4 if level == 1 else 3)
            pdf.set_font("Helvetica", "B", heading_sizes[level])
            pdf.multi_cell(width, heading_sizes[level] * 0.5, text,
                           new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1.5)
        elif kind == "para":
            text_block(block[1])
            pdf.ln(2)
        elif kind == "meta":
            text_block(block[1], size=9.5, style="I")
            pdf.ln(2)
        elif kind == "bullet":
            text_block(block[1], indent=4, prefix="- ")
            pdf.ln(0.8)
        elif kind == "number":
            number += 1
            text_block(block[1], indent=4, prefix=f"{number}. ")
            pdf.ln(0.8)
        elif kind == "code":
            pdf.set_font("Courier", "", 9.5)
            pdf.set_x(pdf.l_margin + 6)
            pdf.multi_cell(width - 6, 5, block[1], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1.5)
        elif kind == "table":
            rows = block[1]
            pdf.set_font("Helvetica", "", 9.5)
            with pdf.table(text_align="LEFT", line_height=5, padding=1.5,
                           first_row_as_headings=True) as table:
                for row in rows:
                    cells = table.row()
                    for cell in row:
                        cells.cell(_plain(cell))
            pdf.ln(3)
    return bytes(pdf.output())


# ---------------------------------------------------------------------------
# DOCX (python-docx)
# ---------------------------------------------------------------------------

def _add_runs(paragraph, text: str, italic: bool = False) -> None:
    for segment, bold in _segments(text):
        run = paragraph.add_run(segment)
        run.bold = bold or None
        run.italic = italic or None


def build_docx(source: str, title: str) -> bytes:
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = title
    props.author = AUTHOR
    props.last_modified_by = AUTHOR
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    props.revision = 1

    for block in parse(source):
        kind = block[0]
        if kind == "heading":
            document.add_heading(_plain(block[2]), level=block[1])
        elif kind == "para":
            _add_runs(document.add_paragraph(), block[1])
        elif kind == "meta":
            _add_runs(document.add_paragraph(), block[1], italic=True)
        elif kind == "bullet":
            _add_runs(document.add_paragraph(style="List Bullet"), block[1])
        elif kind == "number":
            _add_runs(document.add_paragraph(style="List Number"), block[1])
        elif kind == "code":
            paragraph = document.add_paragraph()
            run = paragraph.add_run(block[1])
            run.font.name = "Courier New"
        elif kind == "table":
            rows = block[1]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    cell_paragraph = table.cell(r, c).paragraphs[0]
                    run = cell_paragraph.add_run(_plain(value))
                    run.bold = True if r == 0 else None

    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a zip with fixed timestamps so the output is reproducible."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2025, 6, 1, 9, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------

def _title(source: str) -> str:
    for block in parse(source):
        if block[0] == "heading":
            return _plain(block[2])
    raise ValueError("document has no heading")


def render(relpath: str) -> bytes:
    """Render corpus/<relpath> from its source file in sources/."""
    source = (SOURCES_DIR / f"{relpath}.md").read_text(encoding="utf-8")
    if relpath.endswith(".pdf"):
        return build_pdf(source, _title(source))
    if relpath.endswith(".docx"):
        return build_docx(source, _title(source))
    raise ValueError(f"unsupported extension: {relpath}")


def verify(path: Path) -> str:
    """Check a generated file can be read back; return a one-line summary."""
    if path.suffix == ".pdf":
        from pypdf import PdfReader

        reader = PdfReader(str(path))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        words = len(text.split())
        if words < 300:
            raise AssertionError(f"{path}: only {words} words extracted")
        return f"{len(reader.pages)} pages, {words} words extracted"
    import docx

    document = docx.Document(str(path))
    styles = {p.style.name for p in document.paragraphs if p.style is not None}
    if not {"Heading 1", "Heading 2"} <= styles:
        raise AssertionError(f"{path}: missing Heading 1/2 styles ({sorted(styles)})")
    words = sum(len(p.text.split()) for p in document.paragraphs)
    words += sum(len(c.text.split()) for t in document.tables for r in t.rows for c in r.cells)
    return f"{len(document.paragraphs)} paragraphs, {words} words, styles ok"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="fail if any binary differs from what the script would write")
    parser.add_argument("--verify", action="store_true",
                        help="read every binary back with pypdf / python-docx")
    args = parser.parse_args(argv)

    documents = sources()
    binaries = {path.relative_to(CORPUS_DIR).as_posix() for path in CORPUS_DIR.rglob("*") if path.suffix in FORMATS}
    orphans = sorted(binaries - set(documents))
    stale = []
    for relpath in documents:
        path = CORPUS_DIR / relpath
        data = render(relpath)
        if len(data) > 100_000:
            raise SystemExit(f"{relpath} is {len(data)} bytes; keep binaries under 100 KB")
        if args.check:
            if not path.exists() or path.read_bytes() != data:
                stale.append(relpath)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
            print(f"wrote {relpath} ({len(data):,} bytes)")
        else:
            print(f"unchanged {relpath} ({len(data):,} bytes)")
        if args.verify:
            print(f"    {verify(path)}")
    if orphans:
        print("no source in sources/ for: " + ", ".join(orphans), file=sys.stderr)
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        print("run: python connectors/demo/build_corpus.py", file=sys.stderr)
    return 1 if orphans or stale else 0


if __name__ == "__main__":
    sys.exit(main())
