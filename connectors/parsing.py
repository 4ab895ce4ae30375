"""Turn source bytes into a title and heading-scoped sections, keeping the document's structure.

What one file may turn into is limited (`ParseLimits`): a small file can expand enormously (a zip-based
DOCX whose parts compress 1000:1, a PDF's compressed streams), so archives are checked before they are
opened and extracted text is counted while it is extracted, stopping at the limit instead of after it.
"""

from __future__ import annotations

import io
import re
import zipfile
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


@dataclass(frozen=True)
class ParseLimits:
    """Defaults match the settings' (core/config.py, CITEWISE_MAX_*)."""

    max_bytes: int = 25 * 1024 * 1024
    max_chars: int = 2_000_000
    # Zip-based formats: the parts' declared sizes (zipfile never inflates past them) and each big part's ratio.
    max_uncompressed_bytes: int = 64 * 1024 * 1024
    max_compression_ratio: float = 100.0


# A part this small may compress as well as it likes: it cannot expand to much.
_RATIO_EXEMPT_BYTES = 1024 * 1024


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
    """Collects blocks under the current heading path, and stops the parse once the text passes `max_chars`."""

    def __init__(self, max_chars: int) -> None:
        self.sections: list[Section] = []
        self._path: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._max_chars = max_chars
        self._chars = 0

    def _count(self, text: str) -> None:
        self._chars += len(text)
        if self._chars > self._max_chars:
            raise _too_much_text(self._max_chars)

    def heading(self, level: int, text: str) -> None:
        self._flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        heading = _clean(text)
        self._count(heading)
        self._path.append((level, heading))

    def block(self, text: str) -> None:
        text = text.strip()
        if text:
            self._count(text)
            self._blocks.append(text)

    @property
    def has_text(self) -> bool:
        return bool(self.sections or self._blocks)

    def _flush(self) -> None:
        if self._blocks:
            self.sections.append(Section(tuple(t for _, t in self._path), "\n\n".join(self._blocks)))
        self._blocks = []

    def finish(self) -> list[Section]:
        self._flush()
        return self.sections


def _too_much_text(max_chars: int) -> ParseError:
    return ParseError("too_much_text", f"the file holds more than {max_chars:,} characters of text; the limit is "
                      f"{max_chars:,} (CITEWISE_MAX_EXTRACTED_CHARS)")


def _check_archive(content: bytes, limits: ParseLimits, kind: str) -> None:
    """Refuse a zip-based file whose parts would expand too far, before any part is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ParseError("corrupt", f"the {kind} could not be read ({exc.__class__.__name__}: {exc})") from exc
    declared = sum(part.file_size for part in parts)
    if declared > limits.max_uncompressed_bytes:
        raise ParseError("uncompressed_too_large", f"the {kind}'s parts expand to {declared:,} bytes; the limit is "
                         f"{limits.max_uncompressed_bytes:,} (CITEWISE_MAX_UNCOMPRESSED_BYTES)")
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > _RATIO_EXEMPT_BYTES and ratio > limits.max_compression_ratio:
            raise ParseError("compression_ratio", f"{part.filename} expands {ratio:,.0f} times ({part.compress_size:,} "
                             f"to {part.file_size:,} bytes), as decompression bombs do; the limit is "
                             f"{limits.max_compression_ratio:,.0f} (CITEWISE_MAX_COMPRESSION_RATIO)")


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


def parse_plain_text(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    """Paragraphs; a line underlined with === or --- (setext style) starts a section, as in READMEs."""
    builder = _SectionBuilder(limits.max_chars)
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


def parse_markdown(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    from markdown_it import MarkdownIt

    text = _decode_text(content)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    builder = _SectionBuilder(limits.max_chars)
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


def _inline_text(token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
    return "".join(parts)


_HTML_BLOCKS = ["p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption"]
_HTML_HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def parse_html(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_text(content), "html.parser")
    for junk in soup(["script", "style", "noscript", "nav", "template", "svg"]):
        junk.decompose()
    title = _clean(soup.title.get_text()) if soup.title else ""
    body = soup.body or soup
    builder = _SectionBuilder(limits.max_chars)
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
    if not builder.has_text:  # pages of bare text with no block tags
        for paragraph in _paragraphs(body.get_text("\n")):
            builder.block(paragraph)
    return ParsedDocument(title=title, sections=builder.finish())


_PDF_DECOMPRESSION_LIMITS = ("zlib_maximum_output_length", "lzw_maximum_output_length",
                             "run_length_maximum_output_length", "brotli_maximum_output_length",
                             "array_based_stream_maximum_output_length", "jbig2_maximum_output_length")


def parse_pdf(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    from pypdf import PdfReader, apply_configuration, get_configuration
    from pypdf.errors import LimitReachedError, PdfReadError

    # pypdf inflates each compressed stream up to limits of its own; hold them to ours where ours is lower.
    current = get_configuration()
    caps = {name: min(getattr(current, name), limits.max_uncompressed_bytes) for name in _PDF_DECOMPRESSION_LIMITS}
    builder = _SectionBuilder(limits.max_chars)
    try:
        with apply_configuration(**caps):
            reader = PdfReader(io.BytesIO(content))
            if reader.is_encrypted:
                raise ParseError("encrypted", "the PDF is encrypted")
            # Page by page, so extraction stops at the text limit rather than after reading every page.
            for page in reader.pages:
                for paragraph in _paragraphs(page.extract_text() or ""):
                    builder.block(re.sub(r"[ \t]*\n[ \t]*", " ", paragraph))
            title = (reader.metadata.title or "") if reader.metadata else ""
    except ParseError:
        raise
    except LimitReachedError as exc:
        raise ParseError("uncompressed_too_large", f"a stream in the PDF expands past the limit of "
                         f"{limits.max_uncompressed_bytes:,} bytes (CITEWISE_MAX_UNCOMPRESSED_BYTES) or one of "
                         f"pypdf's own ({exc})") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ParseError("corrupt", f"the PDF could not be read ({exc.__class__.__name__}: {exc})") from exc
    return ParsedDocument(title=_clean(title), sections=builder.finish())


def parse_docx(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    import docx
    from docx.enum.style import WD_STYLE_TYPE
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    _check_archive(content, limits, "DOCX")
    try:
        document = docx.Document(io.BytesIO(content))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ParseError("corrupt", f"the DOCX could not be read ({exc.__class__.__name__}: {exc})") from exc
    # Paragraph.style searches the styles part on every call (milliseconds each, minutes for a long
    # document), so style names are looked up once; the fallback to the default is python-docx's own rule.
    default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
    default_name = (default.name if default is not None else "") or ""
    style_names = {style.style_id: style.name or "" for style in document.styles
                   if style.type == WD_STYLE_TYPE.PARAGRAPH}
    title = _clean(document.core_properties.title or "")
    builder = _SectionBuilder(limits.max_chars)
    # Paragraphs and tables interleaved, in document order, so a table lands under the heading it follows.
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                builder.block(" | ".join(_clean(cell.text) for cell in row.cells))
            continue
        style = style_names.get(block._p.style, default_name)
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


def parse(
    content: bytes, mime_type: str, *, max_bytes: int, max_chars: int = ParseLimits.max_chars,
    max_uncompressed_bytes: int = ParseLimits.max_uncompressed_bytes,
    max_compression_ratio: float = ParseLimits.max_compression_ratio,
) -> ParsedDocument:
    """Parse one file; raises ParseError with a clear code for anything that cannot be indexed."""
    limits = ParseLimits(max_bytes=max_bytes, max_chars=max_chars, max_uncompressed_bytes=max_uncompressed_bytes,
                         max_compression_ratio=max_compression_ratio)
    parser = _PARSERS.get(mime_type)
    if parser is None:
        raise ParseError("unsupported", f"files of type {mime_type or 'unknown'} are not supported "
                         f"(supported: Markdown, plain text, HTML, PDF, DOCX)")
    if len(content) > max_bytes:
        raise ParseError("too_large", f"the file is {len(content):,} bytes; the limit is {max_bytes:,}")
    if not content.strip():
        raise ParseError("empty", "the file is empty")
    parsed = parser(content, limits)
    if parsed.is_empty:
        raise ParseError("empty", "no text could be extracted from the file")
    return parsed
