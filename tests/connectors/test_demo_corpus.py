"""The demo corpus's PDF and DOCX files are what connectors/demo/build_corpus.py renders from connectors/demo/sources/.

Compared by what a reader gets out of them (pypdf's text; python-docx's paragraphs with their styles and bold/italic
runs, and table cells), not by bytes: a patch release of fpdf2 or python-docx that lays the bytes out differently
does not fail this, a source edited without regenerating its binary (or a binary edited by hand) does.
"""

from __future__ import annotations

import importlib.util
import io

import docx
import pytest
from pypdf import PdfReader

from connectors.management.commands.load_demo import DEMO_CORPUS

DEMO = DEMO_CORPUS.parent
_spec = importlib.util.spec_from_file_location("build_corpus", DEMO / "build_corpus.py")
build_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_corpus)
SOURCES = build_corpus.sources()
FIX = "edit the source in connectors/demo/sources/, then run: python connectors/demo/build_corpus.py"


def pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def docx_content(data: bytes) -> list:
    document = docx.Document(io.BytesIO(data))
    paragraphs = [(p.style.name, [(r.text, bool(r.bold), bool(r.italic)) for r in p.runs])
                  for p in document.paragraphs]
    tables = [[[cell.text for cell in row.cells] for row in table.rows] for table in document.tables]
    return [document.core_properties.title, paragraphs, tables]


def test_every_pdf_and_docx_in_the_corpus_has_a_source_and_every_source_a_document():
    binaries = {p.relative_to(DEMO_CORPUS).as_posix() for p in DEMO_CORPUS.rglob("*") if p.suffix in {".pdf", ".docx"}}
    assert binaries == set(SOURCES)
    assert len(SOURCES) == 10
    assert not build_corpus.SOURCES_DIR.is_relative_to(DEMO_CORPUS)  # the demo source must not index the sources


@pytest.mark.parametrize("relpath", sorted(SOURCES))
def test_the_committed_document_matches_its_source(relpath):
    committed, rendered = (DEMO_CORPUS / relpath).read_bytes(), build_corpus.render(relpath)
    title = build_corpus._title(SOURCES[relpath].read_text(encoding="utf-8"))
    if relpath.endswith(".pdf"):
        text = pdf_text(committed)
        assert text == pdf_text(rendered), f"{relpath} is out of date: {FIX}"
        assert text.startswith(title) and len(text.split()) > 300
        assert PdfReader(io.BytesIO(committed)).metadata.title == title
    else:
        content = docx_content(committed)
        assert content == docx_content(rendered), f"{relpath} is out of date: {FIX}"
        assert content[0] == title and content[1][0] == ("Heading 1", [(title, False, False)])
