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
from core.text import remove_hidden_characters

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

def clean_text(text: str) -> str:
    """`text` as it is indexed and shown: without the characters no reader sees (core.text), joiners included."""
    return remove_hidden_characters(text)


def pipe_table(rows: list[list[str]]) -> str:
    """A GitHub pipe table: the first row is the header, then a `| --- |` separator, then one line per row.

    Cells become one line each ("|" escaped); short rows are padded; a table of one column is no table (a
    layout box, a callout), so its cells come back as paragraphs.
    """
    cells = [[_clean(cell).replace("|", "\\|") for cell in row] for row in rows]
    cells = [row for row in cells if any(row)]
    if not cells:
        return ""
    width = max(len(row) for row in cells)
    if width == 1:
        return "\n\n".join(row[0] for row in cells)
    lines = []
    for number, row in enumerate(cells):
        lines.append("| " + " | ".join(row + [""] * (width - len(row))) + " |")
        if number == 0:
            lines.append("| " + " | ".join(["---"] * width) + " |")
    return "\n".join(lines)


def fenced_code(code: str, language: str = "") -> str:
    """A fenced code block, its fence longer than any backtick run inside; whitespace inside is kept."""
    code = clean_text(code).replace("\r\n", "\n").strip("\n").rstrip()
    if not code.strip():
        return ""
    runs = re.findall(r"`{3,}", code)
    fence = "`" * (max(len(run) for run in runs) + 1 if runs else 3)
    language = re.sub(r"[^\w+#.-].*", "", language.strip(), flags=re.S)
    return f"{fence}{language}\n{code}\n{fence}"


@dataclass
class Section:
    heading_path: tuple[str, ...]
    text: str


@dataclass
class ParsedDocument:
    title: str
    sections: list[Section] = field(default_factory=list)
    # The title is a guess from the text (a plain-text file's first line), not one the document declares:
    # a title the source itself gives wins over it, a file name does not.
    title_inferred: bool = False

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
        text = clean_text(text).strip()
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
    """One line of visible text: hidden characters removed, whitespace runs made one space."""
    return re.sub(r"\s+", " ", clean_text(text)).strip()


def _decode_text(content: bytes) -> str:
    # Hidden characters go before the text is parsed: one between "#" and a heading's words hides the heading.
    return clean_text(_decode(content))


def _decode(content: bytes) -> str:
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


def _paragraphs(text: str, *, keep_indent: bool = False) -> list[str]:
    """The text's blank-line separated paragraphs, trimmed; with `keep_indent`, only of blank lines and trailing
    space, so that a first line's indentation still shows."""
    return [p.strip("\n").rstrip() if keep_indent else p.strip()
            for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()]


_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")
# A first line that reads as a title: short, and not a sentence, a list item, a table row or a label.
_TITLE_LINE = re.compile(r"^(?![-*•+|]\s|\d{1,3}[.)]\s)(?=.*[^\W\d_]).{1,100}(?<![.!?,;:])$")


# Below the underlined headings (levels 1 and 2) of a plain-text file.
DEFINITION_TERM_LEVEL = 3


def _is_term(paragraph: str) -> bool:
    """Whether the paragraph is a short unindented line that reads as a title over lines all indented under it."""
    raw = [line for line in paragraph.split("\n") if line.strip()]
    if len(raw) < 2 or raw[0][:1].isspace() or not _TITLE_LINE.match(raw[0].strip()):
        return False
    return ": " not in raw[0] and all(line[:1].isspace() for line in raw[1:])  # "Slack: #it-help" is a label


def parse_plain_text(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    """Paragraphs; a line underlined with === or --- (setext style) starts a section, as in READMEs, and a term
    over its indented explanation a subsection.

    With no underlined title, a first line standing alone that reads as a title is the title (and the
    top heading, as a Markdown "# " line would be), so the file name is only the last resort.
    """
    builder = _SectionBuilder(limits.max_chars)
    title = ""
    inferred = False
    # Kept indented: an indented explanation tells a term's heading (_is_term).
    paragraphs = _paragraphs(_decode_text(content), keep_indent=True)
    first = paragraphs[0].strip() if paragraphs else ""
    if len(paragraphs) > 1 and "\n" not in first and _TITLE_LINE.match(first):
        title, inferred = _clean(first), True
        builder.heading(1, title)
        paragraphs = paragraphs[1:]
    for paragraph in paragraphs:
        lines = [line.strip() for line in paragraph.split("\n")]
        while len(lines) >= 2 and _UNDERLINE.match(lines[1]) and len(lines[0]) <= 120:
            level = 1 if lines[1].lstrip().startswith("=") else 2
            if level == 1 and (not title or (inferred and not builder.has_text)):
                title, inferred = _clean(lines[0]), False
            builder.heading(level, lines[0])
            lines = lines[2:]
        if _is_term(paragraph):
            # A term over its indented explanation ("Connected but internal sites do not load" / "  Disconnect,
            # …"): a heading of its own, not the first words of the sentence it explains.
            builder.heading(DEFINITION_TERM_LEVEL, lines[0])
            lines = lines[1:]
        table = _pipe_rows(lines)
        builder.block(pipe_table(table) if table else _unwrap(lines))
    return ParsedDocument(title=title, sections=builder.finish(), title_inferred=inferred)


_ITEM_START = re.compile(r"^(?:[-*•+]\s|\d{1,3}[.)]\s|[a-z][.)]\s|\|)")
_COLUMNS = re.compile(r"\S {2,}\S|\t|\|")
_SEPARATOR_ROW = re.compile(r"^\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?$")


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


def _pipe_rows(lines: list[str]) -> list[list[str]] | None:
    """The rows of a paragraph written as a pipe table ("| a | b |" lines, a `|---|` line under the first),
    or None: lines merely containing "|" are left as they are."""
    if len(lines) < 3 or not _SEPARATOR_ROW.match(lines[1]) or "|" not in lines[1]:
        return None
    if not all(line.startswith("|") for line in lines if line):
        return None
    return [[cell.replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            for number, line in enumerate(lines) if line and number != 1]


_BARE_MARKER = re.compile(r"^\s*(?:-|\d+\.)\s*$")


def parse_markdown(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(_decode_text(content))
    builder = _SectionBuilder(limits.max_chars)
    title = ""
    heading_level: int | None = None
    lists: list[bool] = []  # open lists, innermost last: ordered or not
    list_lines: list[str] = []
    fresh_item = False
    table: list[list[str]] | None = None
    row: list[str] | None = None

    def flush_list() -> None:
        # A list is one block, an item a line; what a list item holds beyond text ends the block there.
        builder.block("\n".join(line for line in list_lines if not _BARE_MARKER.match(line)))
        list_lines.clear()

    for token in tokens:
        if token.type == "heading_open":
            flush_list()
            heading_level = int(token.tag[1])
        elif token.type == "heading_close":
            heading_level = None
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            lists.append(token.type == "ordered_list_open")
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
            if not lists:
                flush_list()
        elif token.type == "list_item_open":
            marker = f"{token.info or 1}." if lists[-1] else "-"
            list_lines.append(f"{'  ' * (len(lists) - 1)}{marker} ")
            fresh_item = True
        elif token.type == "table_open":
            table = []
        elif token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and table is not None and row is not None:
            table.append(row)
            row = None
        elif token.type == "table_close" and table is not None:
            flush_list()
            builder.block(pipe_table(table))
            table = None
        elif token.type == "inline":
            content_text = _inline_text(token)
            if heading_level is not None:
                if heading_level == 1 and not title:
                    title = _clean(content_text)
                builder.heading(heading_level, content_text)
            elif row is not None:
                row.append(content_text)
            elif lists and list_lines:
                list_lines[-1] += _clean(content_text) if fresh_item else " " + _clean(content_text)
                fresh_item = False
            else:
                builder.block(content_text)
        elif token.type in ("fence", "code_block"):
            flush_list()
            builder.block(fenced_code(token.content, token.info.split()[0] if token.info.strip() else ""))
    flush_list()
    return ParsedDocument(title=title, sections=builder.finish())


def _inline_text(token) -> str:
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak":  # a wrapped line: the sentence goes on
            parts.append(" ")
        elif child.type == "hardbreak":
            parts.append("\n")
    return "".join(parts)


_HTML_BLOCKS = {"p", "li", "blockquote", "dt", "dd", "figcaption", "caption"}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_STRUCTURES = {"table", "ul", "ol", "pre"}
_HTML_WANTED = _HTML_BLOCKS | _HTML_HEADINGS | _HTML_STRUCTURES
_HTML_BREAKING = [*_HTML_WANTED - {"pre"}, "div", "tr", "td", "th", "dl", "section", "article", "header", "footer",
                  "main", "aside", "figure", "address", "hr"]
# colspan/rowspan beyond this are typos or attacks, not tables.
_MAX_SPAN = 64


def parse_html(content: bytes, limits: ParseLimits = ParseLimits()) -> ParsedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode_text(content), "html.parser")
    for junk in soup(["script", "style", "noscript", "nav", "template", "svg"]):
        junk.decompose()
    # Text is read without separators ("<b>Navan</b>, our" stays "Navan, our"), so line breaks and block
    # boundaries are marked as whitespace first; <pre> keeps its own.
    for line_break in soup.find_all("br"):
        line_break.replace_with("\n")
    for element in soup.find_all(_HTML_BREAKING):
        if element.find_parent("pre") is None:
            element.insert(0, "\n")
            element.append("\n")
    builder = _SectionBuilder(limits.max_chars)
    title = _clean(soup.title.get_text()) if soup.title else ""
    body = soup.body or soup
    title = _html_blocks(body, builder, title)
    if not builder.has_text:  # pages of bare text with no block tags
        for paragraph in _paragraphs(body.get_text("\n")):
            builder.block(paragraph)
    return ParsedDocument(title=title, sections=builder.finish())


def _html_blocks(root, builder: _SectionBuilder, title: str) -> str:
    """Feed the outermost block elements under `root` to the builder, in order; returns the title so far."""
    for element in root.find_all(list(_HTML_WANTED)):
        parent = element.parent
        while parent is not None and parent is not root and parent.name not in _HTML_WANTED:
            parent = parent.parent
        if parent is not root and parent is not None:
            continue  # inside another block, which takes its text
        if element.name in _HTML_HEADINGS:
            heading = element.get_text()
            if element.name == "h1" and not title:
                title = _clean(heading)
            builder.heading(int(element.name[1]), heading)
        elif element.name == "table":
            title = _html_table(element, builder, title)
        elif element.name in ("ul", "ol"):
            builder.block("\n".join(_html_list(element)))
        elif element.name == "pre":
            code = element.find("code")
            classes = [*element.get("class", []), *(code.get("class", []) if code else [])]
            language = next((c.split("-", 1)[1] for c in classes if c.startswith(("language-", "lang-"))), "")
            builder.block(fenced_code(element.get_text(), language))
        else:
            prefix = "- " if element.name == "li" else ""
            builder.block(prefix + _clean(element.get_text()))
    return title


def _html_list(element, depth: int = 0) -> list[str]:
    """One line per item ("- " or "1. "), nested lists indented under their item."""
    from bs4 import Tag

    lines: list[str] = []
    start = element.get("start", "1")
    number = int(start) if element.name == "ol" and str(start).isdigit() else 1
    for item in element.find_all("li", recursive=False):
        nested = [child for child in item.children if isinstance(child, Tag) and child.name in ("ul", "ol")]
        text = _clean("".join(child.get_text() if isinstance(child, Tag) else str(child)
                              for child in item.children if child not in nested))
        if text:
            marker = f"{number}." if element.name == "ol" else "-"
            lines.append(f"{'  ' * depth}{marker} {text}")
            number += 1
        for child in nested:
            lines.extend(_html_list(child, depth + 1))
    return lines


def _span(value, limit: int) -> int:
    return min(int(value), limit) if str(value).strip().isdigit() and int(value) > 0 else 1


def _fill_carried(out: list[str], carried: dict[int, list]) -> None:
    """Fill the columns a cell above still spans (rowspan), from where the row has got to."""
    while len(out) in carried:
        text_left = carried[len(out)]
        out.append(text_left[0])
        text_left[1] -= 1
        if not text_left[1]:
            del carried[len(out) - 1]


def _html_table(table, builder: _SectionBuilder, title: str) -> str:
    """A data table becomes one pipe table: <thead> rows (else the first row) are the header.

    A header cell spanning columns names each of them; a body cell spanning columns fills the first; a cell
    spanning rows repeats down them, so every row reads whole. A table laid out with headings inside is
    page layout, not data: its cells are read as ordinary blocks.
    """
    rows = [tr for tr in table.find_all("tr") if tr.find_parent("table") is table]
    cells_of = [tr.find_all(["td", "th"], recursive=False) for tr in rows]
    if table.find(list(_HTML_HEADINGS)) is not None:
        for cells in cells_of:
            for cell in cells:
                if cell.find(list(_HTML_WANTED)) is not None:
                    title = _html_blocks(cell, builder, title)
                else:
                    builder.block(_clean(cell.get_text()))
        return title
    caption = table.find("caption")
    if caption is not None and caption.find_parent("table") is table:
        builder.block(_clean(caption.get_text()))
    head = [i for i, tr in enumerate(rows) if tr.parent is not None and tr.parent.name == "thead"] or [0]
    grid: list[list[str]] = []
    carried: dict[int, list] = {}  # column -> [text, rows still to fill] from a rowspan
    for number, cells in enumerate(cells_of):
        is_head = number in head
        out: list[str] = []
        for cell in cells:
            _fill_carried(out, carried)
            text = _clean(cell.get_text())
            down = min(_span(cell.get("rowspan"), _MAX_SPAN), len(rows) - number)
            for k in range(_span(cell.get("colspan"), _MAX_SPAN)):
                value = text if k == 0 or is_head else ""
                if down > 1:
                    carried[len(out)] = [value, down - 1]
                out.append(value)
        _fill_carried(out, carried)
        while any(column > len(out) for column in carried):
            out.append("")
            _fill_carried(out, carried)
        grid.append(out)
    header_rows = [grid[i] for i in head if i < len(grid)]
    width = max((len(r) for r in grid), default=0)
    header = [" ".join(dict.fromkeys(r[c] for r in header_rows if c < len(r) and r[c])) for c in range(width)]
    builder.block(pipe_table([header] + [r for i, r in enumerate(grid) if i not in head]))
    return title


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
                    for kind, lines in _pdf_runs(paragraph.split("\n")):
                        builder.block(pipe_table([re.split(r"\s+\|\s+", line.strip().strip("|").strip())
                                                  for line in lines]) if kind == "table"
                                      else " ".join(line.strip() for line in lines))
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


def _pdf_runs(lines: list[str]) -> list[tuple[str, list[str]]]:
    """A PDF paragraph's lines as ("table", rows) and ("text", lines) runs.

    pypdf gives text only, with table cells run together, so only tables written with " | " between cells
    are recognised: three or more consecutive lines with the same number of separators. Anything less sure
    stays text, its wrapped lines joined.
    """
    separators = [len(re.findall(r"\s\|\s", f" {line.strip()} ".replace(" | ", "  |  "))) for line in lines]
    runs: list[tuple[str, list[str]]] = []
    i = 0
    while i < len(lines):
        j = i
        while j + 1 < len(lines) and separators[i] and separators[j + 1] == separators[i]:
            j += 1
        if j - i >= 2:
            runs.append(("table", lines[i:j + 1]))
        elif runs and runs[-1][0] == "text":
            runs[-1][1].extend(lines[i:j + 1])
        else:
            runs.append(("text", lines[i:j + 1]))
        i = j + 1
    return runs


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
    list_lines: list[str] = []
    code_lines: list[str] = []

    def flush() -> None:
        # Consecutive list paragraphs are one list block; consecutive code paragraphs one fenced block.
        builder.block("\n".join(list_lines))
        builder.block(fenced_code("\n".join(code_lines)))
        list_lines.clear()
        code_lines.clear()

    # Paragraphs and tables interleaved, in document order, so a table lands under the heading it follows.
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            flush()
            builder.block(pipe_table([[cell.text for cell in row.cells] for row in block.rows]))
            continue
        style = style_names.get(block._p.style, default_name)
        text = block.text
        heading = re.fullmatch(r"Heading (\d)", style)
        if style != "Title" and not heading and _is_docx_code(style, block):
            builder.block("\n".join(list_lines))
            list_lines.clear()
            code_lines.append(text)
        elif style.startswith("List") and text.strip():
            builder.block(fenced_code("\n".join(code_lines)))
            code_lines.clear()
            previous = list_lines[-1] if list_lines else ""
            if "Number" in style:
                number = int(previous.split(".", 1)[0]) + 1 if previous[:1].isdigit() else 1
                list_lines.append(f"{number}. {_clean(text)}")
            else:
                list_lines.append(f"- {_clean(text)}")
        else:
            flush()
            if style == "Title":
                title = title or _clean(text)
            elif heading:
                builder.heading(int(heading.group(1)), text)
            else:
                builder.block(text)
    flush()
    return ParsedDocument(title=title, sections=builder.finish())


_MONOSPACE_FONTS = {"courier", "courier new", "consolas", "menlo", "monaco", "lucida console", "source code pro",
                    "dejavu sans mono", "liberation mono", "cascadia code", "cascadia mono", "roboto mono"}
_CODE_STYLES = {"html preformatted", "macro text", "plain text"}


def _is_docx_code(style: str, paragraph) -> bool:
    """A code paragraph: a code style, or every run with text set in a monospace font."""
    if "code" in style.lower() or style.lower() in _CODE_STYLES:
        return True
    runs = [run for run in paragraph.runs if run.text.strip()]
    return bool(runs) and all((run.font.name or "").lower() in _MONOSPACE_FONTS for run in runs)


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
