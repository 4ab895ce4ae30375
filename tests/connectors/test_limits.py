"""How much one file may turn into: decompression bombs and oversized text are refused per file, with a clear code."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest

from connectors import services
from connectors.models import Document
from connectors.parsing import DOCX, ParseError, parse
from tests.connectors.conftest import found
from tests.connectors.files import make_docx, make_docx_bomb, make_pdf

LIMIT = 25 * 1024 * 1024
SENTENCE = "The zeppelin hangar inspection happens every spring. "


def test_a_docx_decompression_bomb_is_refused_before_it_is_parsed():
    """Reproduces issue 10 item 12: a small DOCX expanded to megabytes of text, as its size limit was the zip's."""
    bomb = make_docx_bomb(b"spam and eggs " * 4096, megabytes=8)
    part = zipfile.ZipFile(BytesIO(bomb)).getinfo("word/document.xml")
    assert len(bomb) < 100_000 and part.file_size > 8_000_000  # tiny on disk, 8 MB inside
    with pytest.raises(ParseError) as refused:
        parse(bomb, DOCX, max_bytes=LIMIT)
    assert refused.value.code == "compression_ratio"
    assert "word/document.xml" in str(refused.value)


def test_the_declared_uncompressed_size_of_a_docx_is_limited():
    """Reproduces issue 10 item 12: nothing limited what a DOCX's parts declare they expand to."""
    source = make_docx("Plain", [(1, "Heading", "A short and ordinary paragraph.")])
    assert parse(source, DOCX, max_bytes=LIMIT).sections
    with pytest.raises(ParseError) as refused:
        parse(source, DOCX, max_bytes=LIMIT, max_uncompressed_bytes=10_000)
    assert refused.value.code == "uncompressed_too_large"


@pytest.fixture
def oversized_folder(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    long_text = SENTENCE * 60  # about 3,200 characters
    (folder / "bomb.docx").write_bytes(make_docx_bomb(b" " * 65536, megabytes=8))
    (folder / "long.txt").write_text(long_text)
    (folder / "long.md").write_text(f"# Long\n\n{long_text}\n")
    (folder / "long.html").write_text(f"<h1>Long</h1><p>{long_text}</p>")
    (folder / "long.pdf").write_bytes(make_pdf("Long", [("Inspections", long_text)]))
    (folder / "long.docx").write_bytes(make_docx("Long", [(1, "Inspections", long_text)]))
    (folder / "many.md").write_text("".join(f"## Part {n}\n\nShort part number {n}.\n\n" for n in range(12)))
    (folder / "ok.md").write_text("# Canteen\n\nThe canteen serves ramen on Thursdays.\n")
    return folder


@pytest.mark.django_db
def test_extracted_text_and_chunks_are_limited_per_file_for_every_format(oversized_folder, make_folder_source,
                                                                          settings):
    """Reproduces issue 10 item 12: extracted text and chunk count per document had no limit in any format."""
    settings.CITEWISE = settings.CITEWISE.replace(max_extracted_chars=2500, max_chunks_per_document=5)
    source = make_folder_source(oversized_folder, public=True)
    report = services.sync_source(source)

    codes = {where: message.split(":", 1)[0] for where, message in report.errors}
    assert codes == {"bomb.docx": "compression_ratio", "long.txt": "too_much_text", "long.md": "too_much_text",
                     "long.html": "too_much_text", "long.pdf": "too_much_text", "long.docx": "too_much_text",
                     "many.md": "too_many_chunks"}
    assert (report.indexed, report.failed) == (1, 7)
    documents = {d.external_id: d for d in Document.objects.filter(source=source)}
    assert documents["many.md"].error == ("too_many_chunks: the file makes more than 5 chunks; the limit is 5 "
                                          "(CITEWISE_MAX_CHUNKS_PER_DOCUMENT)")
    assert all(d.chunk_count == 0 and not d.indexed_hash for name, d in documents.items() if name != "ok.md")
    assert found(source, "zeppelin hangar inspection") == []
    assert found(source, "short part number") == []
    assert found(source, "ramen") == [documents["ok.md"].id]
