"""Turn source bytes into a title and heading-scoped sections, keeping the document's structure."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

from connectors.base import ItemError

MARKDOWN = "text/markdown"
PLAIN_TEXT = "text/plain"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED_MIME_TYPES = (MARKDOWN, PLAIN_TEXT, HTML, PDF, DOCX)


class ParseError(ItemError):
    """A file that cannot be indexed; `code` is stable, the message is for admins."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


@dataclass
class Section:
    heading_path: tuple[str, ...]
    text: str


@dataclass
class ParsedDocument:
    title: str
    sections: list[Section] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not any(s.text.strip() for s in self.sections)


class _SectionBuilder:
    """Collects blocks under the current heading path."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._blocks: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self._flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, _clean(text)))

    def block(self, text: str) -> None:
        text = text.strip()
        if text:
            self._blocks.append(text)

    def _flush(self) -> None:
        if self._blocks:
            self.sections.append(Section(tuple(t for _, t in self._path), "\n\n".join(self._blocks)))
        self._blocks = []

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _decode_text(content: bytes) -> str:
    if b"\x00" in content[:8192]:
        raise ParseError("binary", "the file contains binary data, not text")
    for encoding in ("utf-8-sig", "utf-16") if content[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    try:
        text = content.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ParseError("binary", "the file is not valid UTF-8 or Windows-1252 text") from exc
    control = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\r\n\t\f")
    if control > 8:
        raise ParseError("binary", "the file contains binary data, not text")
    return text


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")


def parse_plain_text(content: bytes) -> ParsedDocument:
    """Paragraphs; a line underlined with === or --- (setext style) starts a section, as in READMEs."""
    builder = _SectionBuilder()
    title = ""
    for paragraph in _paragraphs(_decode_text(content)):
        lines = [line.strip() for line in paragraph.split("\n")]
        while len(lines) >= 2 and _UNDERLINE.match(lines[1]) and len(lines[0]) <= 120:
            level = 1 if lines[1].lstrip().startswith("=") else 2
            if level == 1 and not title:
                title = _clean(lines[0])
            builder.heading(level, lines[0])
            lines = lines[2:]
        builder.block(_unwrap(lines))
    return ParsedDocument(title=title, sections=builder.finish())


_ITEM_START = re.compile(r"^(?:[-*•+]\s|\d{1,3}[.)]\s|[a-z][.)]\s|\|)")
_COLUMNS = re.compile(r"\S {2,}\S|\t|\|")


def _unwrap(lines: list[str]) -> str:
    """Join hard-wrapped lines into one line per paragraph; list items and aligned columns keep their breaks."""
    out: list[str] = []
    for line in lines:
        if out and line and not _ITEM_START.match(line) and not _COLUMNS.search(line) \
                and not _COLUMNS.search(out[-1]):
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def parse_markdown(content: bytes) -> ParsedDocument:
    from markdown_it import MarkdownIt

    text = _decode_text(content)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    builder = _SectionBuilder()
    title = ""
    heading_level: int | None = None
    list_depth = 0
    table_row: list[str] | None = None
    for token in tokens:
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = None
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif token.type == "tr_open":
            table_row = []
        elif token.type == "tr_close" and table_row is not None:
            builder.block(" | ".join(table_row))
            table_row = None
        elif token.type == "inline":
            content_text = _inline_text(token)
            if heading_level is not None:
                if heading_level == 1 and not title:
                    title = _clean(content_text)
                builder.heading(heading_level, content_text)
            elif table_row is not None:
                table_row.append(_clean(content_text))
            elif list_depth:
                builder.block("- " + content_text)
            else:
                builder.block(content_text)
        elif token.type in ("fence", "code_block"):
            builder.block(token.content)
    return ParsedDocument(title=title, sections=builder.finish())


def _inline_text(token) -> str:  # noqa: ANN001 - markdown_it Token
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


_HTML_BLOCKS = ["p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption"]
_HTML_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def parse_html(content: bytes) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_text(content), "html.parser")
    for junk in soup(["script", "style", "noscript", "nav", "template", "svg"]):
        junk.decompose()
    title = _clean(soup.title.get_text()) if soup.title else ""
    body = soup.body or soup
    builder = _SectionBuilder()
    wanted = set(_HTML_BLOCKS) | set(_HTML_HEADINGS)
    for element in body.find_all(list(wanted)):
        if any(parent.name in wanted for parent in element.parents):
            continue
        if element.name in _HTML_HEADINGS:
            heading = element.get_text(" ", strip=True)
            if element.name == "h1" and not title:
                title = _clean(heading)
            builder.heading(int(element.name[1]), heading)
        else:
            prefix = "- " if element.name == "li" else ""
            builder.block(prefix + element.get_text(" ", strip=True))
    if not builder.sections and not builder._blocks:  # pages of bare text with no block tags
        for paragraph in _paragraphs(body.get_text("\n")):
            builder.block(paragraph)
    return ParsedDocument(title=title, sections=builder.finish())


def parse_pdf(content: bytes) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise ParseError("encrypted", "the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        title = (reader.metadata.title or "") if reader.metadata else ""
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError("corrupt", f"the PDF could not be read ({exc.__class__.__name__}: {exc})") from exc
    builder = _SectionBuilder()
    for page_text in pages:
        for paragraph in _paragraphs(page_text):
            builder.block(re.sub(r"[ \t]*\n[ \t]*", " ", paragraph))
    return ParsedDocument(title=_clean(title), sections=builder.finish())


def parse_docx(content: bytes) -> ParsedDocument:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(content))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError("corrupt", f"the DOCX could not be read ({exc.__class__.__name__}: {exc})") from exc
    from docx.table import Table

    title = _clean(document.core_properties.title or "")
    builder = _SectionBuilder()
    # Paragraphs and tables interleaved, in document order, so a table lands under the heading it follows.
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                builder.block(" | ".join(_clean(cell.text) for cell in row.cells))
            continue
        style = (block.style.name if block.style is not None else "") or ""
        text = block.text
        if style == "Title":
            title = title or _clean(text)
        elif match := re.fullmatch(r"Heading (\d)", style):
            builder.heading(int(match.group(1)), text)
        elif style.startswith("List"):
            builder.block("- " + text)
        else:
            builder.block(text)
    return ParsedDocument(title=title, sections=builder.finish())


_PARSERS = {
    MARKDOWN: parse_markdown,
    PLAIN_TEXT: parse_plain_text,
    HTML: parse_html,
    PDF: parse_pdf,
    DOCX: parse_docx,
}


def parse(content: bytes, mime_type: str, *, max_bytes: int) -> ParsedDocument:
    """Parse one file; raises ParseError with a clear code for anything that cannot be indexed."""
    parser = _PARSERS.get(mime_type)
    if parser is None:
        raise ParseError("unsupported", f"files of type {mime_type or 'unknown'} are not supported "
                         f"(supported: Markdown, plain text, HTML, PDF, DOCX)")
    if len(content) > max_bytes:
        raise ParseError("too_large", f"the file is {len(content):,} bytes; the limit is {max_bytes:,}")
    if not content.strip():
        raise ParseError("empty", "the file is empty")
    parsed = parser(content)
    if parsed.is_empty:
        raise ParseError("empty", "no text could be extracted from the file")
    return parsed
