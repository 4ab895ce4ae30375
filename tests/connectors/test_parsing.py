from __future__ import annotations

import pytest

from connectors.parsing import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT, ParseError, clean_text, parse
from tests.connectors.files import make_docx, make_pdf

LIMIT = 1_000_000


def test_markdown_sections_follow_the_heading_tree():
    source = b"""# Remote work

Intro paragraph.

## Equipment

- A laptop
- A monitor stipend of 300 dollars

### Returns

Return equipment within 14 days.

## Hours

| Core | Hours |
|------|-------|
| EU   | 10-15 |
"""
    parsed = parse(source, MARKDOWN, max_bytes=LIMIT)
    assert parsed.title == "Remote work"
    paths = [s.heading_path for s in parsed.sections]
    assert paths == [("Remote work",), ("Remote work", "Equipment"), ("Remote work", "Equipment", "Returns"),
                     ("Remote work", "Hours")]
    assert parsed.sections[1].text == "- A laptop\n- A monitor stipend of 300 dollars"
    assert parsed.sections[3].text == "| Core | Hours |\n| --- | --- |\n| EU | 10-15 |"


def test_html_drops_scripts_and_keeps_headings():
    source = b"""<html><head><title>Security awareness</title><script>alert('x')</script></head>
    <body><nav>Home | About</nav><h1>Security awareness</h1><p>Report phishing to security@corp.</p>
    <h2>Passwords</h2><ul><li>Use a password manager</li><li>Minimum 14 characters</li></ul></body></html>"""
    parsed = parse(source, HTML, max_bytes=LIMIT)
    assert parsed.title == "Security awareness"
    assert [s.heading_path for s in parsed.sections] == [("Security awareness",), ("Security awareness", "Passwords")]
    text = " ".join(s.text for s in parsed.sections)
    assert "alert" not in text and "Home | About" not in text
    assert "- Minimum 14 characters" in parsed.sections[1].text


def test_pdf_text_is_extracted():
    source = make_pdf("Incident response", [("Severity levels", "A SEV1 incident pages the on-call engineer within "
                                             "five minutes.")])
    parsed = parse(source, PDF, max_bytes=LIMIT)
    assert parsed.title == "Incident response"
    assert "SEV1 incident pages the on-call engineer" in " ".join(s.text for s in parsed.sections)


def test_docx_headings_become_sections():
    source = make_docx("Laptop policy", [(1, "Issuing", "Laptops are issued on day one."),
                                         (2, "Replacement", "Replacement happens every three years.")])
    parsed = parse(source, DOCX, max_bytes=LIMIT)
    assert parsed.title == "Laptop policy"
    assert [s.heading_path for s in parsed.sections] == [("Issuing",), ("Issuing", "Replacement")]
    assert parsed.sections[1].text == "Replacement happens every three years."


def test_docx_tables_stay_under_the_heading_they_follow():
    """Reproduces issue 10 item 14: DOCX tables were all attributed to the document's last heading."""
    source = make_docx(
        "Office guide",
        [(1, "Parking", "Visitors park on level two."), (1, "Canteen", "The canteen opens at noon.")],
        tables={0: [["Level", "Spaces"], ["-2", "40"]], 1: [["Day", "Dish"], ["Monday", "Ramen"]]},
    )
    parsed = parse(source, DOCX, max_bytes=LIMIT)
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (("Parking",), "Visitors park on level two.\n\n| Level | Spaces |\n| --- | --- |\n| -2 | 40 |"),
        (("Canteen",), "The canteen opens at noon.\n\n| Day | Dish |\n| --- | --- |\n| Monday | Ramen |"),
    ]


def test_plain_text_underlined_headings_become_sections():
    source = b"RUNBOOK: FAILOVER\n=================\n\nOwner: data team.\n\n1. ARCHITECTURE\n---------------\n\nThree nodes.\n"
    parsed = parse(source, PLAIN_TEXT, max_bytes=LIMIT)
    assert parsed.title == "RUNBOOK: FAILOVER"
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (("RUNBOOK: FAILOVER",), "Owner: data team."), (("RUNBOOK: FAILOVER", "1. ARCHITECTURE"), "Three nodes."),
    ]


def test_plain_text_keeps_paragraphs_and_reads_windows_1252():
    parsed = parse("Caf\xe9 opens at 8.\n\nIt closes at 17.".encode("cp1252"), PLAIN_TEXT, max_bytes=LIMIT)
    assert parsed.sections[0].text == "Café opens at 8.\n\nIt closes at 17."


@pytest.mark.parametrize(
    ("content", "mime", "code"),
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", PDF, "corrupt"),
        (b"PK\x03\x04 not really a zip", DOCX, "corrupt"),
        (b"\x00\x01\x02\x03ELF binary", PLAIN_TEXT, "binary"),
        (b"   \n\n  ", MARKDOWN, "empty"),
        (b"<html><body><script>x()</script></body></html>", HTML, "empty"),
        (b"x" * (LIMIT + 1), PLAIN_TEXT, "too_large"),
        (b"GIF89a....", "image/gif", "unsupported"),
    ],
)
def test_bad_files_raise_a_clear_error(content, mime, code):
    with pytest.raises(ParseError) as caught:
        parse(content, mime, max_bytes=LIMIT)
    assert caught.value.code == code
    assert str(caught.value).startswith(code + ": ")


def test_plain_text_hard_wrapped_lines_are_joined_but_lists_and_columns_kept():
    source = (b"Kestrel pays semi-monthly: on the 15th and on the last day of each month,\n"
              b"24 paychecks a year.\n\n- First item that wraps\n  onto a second line\n- Second item\n\n"
              b"prod-us   pg-a, pg-b\nprod-eu   pg-c, pg-d\n")
    parsed = parse(source, PLAIN_TEXT, max_bytes=LIMIT)
    assert parsed.sections[0].text.split("\n\n") == [
        "Kestrel pays semi-monthly: on the 15th and on the last day of each month, 24 paychecks a year.",
        "- First item that wraps onto a second line\n- Second item",
        "prod-us   pg-a, pg-b\nprod-eu   pg-c, pg-d",
    ]


def section_texts(parsed) -> str:
    return "\n\n".join(s.text for s in parsed.sections)


def test_markdown_tables_code_and_lists_keep_their_structure():
    source = b"""# Leave

| Tenure | Days \\| notes |
|:-------|------:|
| *0 to 3* years | 15 |
| 3 to 6 years | 20 |

1. Ask your manager.
2. Book it in Workday.
   - Half days count.

```bash
workday leave --days 2
```

    indented = "code"
"""
    parsed = parse(source, MARKDOWN, max_bytes=LIMIT)
    assert parsed.sections[0].text.split("\n\n") == [
        "| Tenure | Days \\| notes |\n| --- | --- |\n| 0 to 3 years | 15 |\n| 3 to 6 years | 20 |",
        "1. Ask your manager.\n2. Book it in Workday.\n  - Half days count.",
        "```bash\nworkday leave --days 2\n```",
        '```\nindented = "code"\n```',
    ]


def test_html_table_without_thead_is_one_pipe_table_with_its_first_row_as_header():
    source = b"""<html><body><h1>Hotels</h1>
    <table><caption>Nightly caps</caption>
      <tr><td>City</td><td>Cap</td><td>Note</td></tr>
      <tr><td><b>New York</b></td><td>$340</td><td>incl. <a href="#">taxes</a> | fees</td></tr>
      <tr><td>Oslo</td><td colspan="2">set per city</td></tr>
      <tr><td>Rome</td><td>$200</td><td><table><tr><td>inner</td><td>cell</td></tr></table></td></tr>
    </table></body></html>"""
    parsed = parse(source, HTML, max_bytes=LIMIT)
    assert parsed.sections[0].text == (
        "Nightly caps\n\n"
        "| City | Cap | Note |\n| --- | --- | --- |\n| New York | $340 | incl. taxes \\| fees |\n"
        "| Oslo | set per city |  |\n| Rome | $200 | inner cell |"
    )


def test_html_header_cells_spanning_columns_name_each_and_rowspans_repeat_down():
    source = b"""<h1>Quarters</h1><table>
      <thead><tr><th rowspan="2">Region</th><th colspan="2">2025</th></tr><tr><th>Q1</th><th>Q2</th></tr></thead>
      <tbody><tr><td rowspan="2">EU</td><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></tbody>
    </table>
    <pre><code class="language-sql">SELECT *
  FROM leave;</code></pre>
    <ol start="3"><li>Third<ul><li>nested</li></ul></li><li>Fourth</li></ol>"""
    parsed = parse(source, HTML, max_bytes=LIMIT)
    assert parsed.sections[0].text.split("\n\n") == [
        "| Region | 2025 Q1 | 2025 Q2 |\n| --- | --- | --- |\n| EU | 1 | 2 |\n| EU | 3 | 4 |",
        "```sql\nSELECT *\n  FROM leave;\n```",
        "3. Third\n  - nested\n4. Fourth",
    ]


def test_docx_tables_code_and_numbered_lists_keep_their_structure():
    import io

    import docx

    document = docx.Document()
    document.add_heading("Runbook", level=1)
    table = document.add_table(rows=3, cols=2)
    for row, values in zip(table.rows, [["Step", "Owner"], ["Fail over", "SRE | DBA"], ["Verify", "On-call"]],
                           strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("Check the replica first.", style="List Number")
    document.add_paragraph("Then promote it.", style="List Number")
    for line in ("pg_ctl promote", "  -D /var/lib/pg"):
        document.add_paragraph().add_run(line).font.name = "Courier New"
    document.add_paragraph("Done.")
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse(buffer.getvalue(), DOCX, max_bytes=LIMIT)
    assert parsed.sections[0].text.split("\n\n") == [
        "| Step | Owner |\n| --- | --- |\n| Fail over | SRE \\| DBA |\n| Verify | On-call |",
        "1. Check the replica first.\n2. Then promote it.",
        "```\npg_ctl promote\n  -D /var/lib/pg\n```",
        "Done.",
    ]


def test_plain_text_title_comes_from_a_first_line_that_reads_as_one():
    parsed = parse(b"Austin Office Guide\n\nThe office opens at 8.\n\n| Floor | Team |\n|---|---|\n| 1 | Sales |\n",
                   PLAIN_TEXT, max_bytes=LIMIT)
    assert (parsed.title, parsed.title_inferred) == ("Austin Office Guide", True)
    assert [(s.heading_path, s.text) for s in parsed.sections] == [
        (("Austin Office Guide",), "The office opens at 8.\n\n| Floor | Team |\n| --- | --- |\n| 1 | Sales |"),
    ]
    for not_a_title in (b"The office opens at 8.\n\nIt closes at 17.", b"- a list item\n\nmore",
                        b"Note:\n\nmore", b"2025\n\nmore", b"Only a title"):
        parsed = parse(not_a_title, PLAIN_TEXT, max_bytes=LIMIT)
        assert (parsed.title, parsed.sections[0].heading_path) == ("", ()), not_a_title


@pytest.mark.parametrize("mime", [MARKDOWN, HTML, PLAIN_TEXT, DOCX, PDF])
def test_hidden_characters_are_removed_at_parse_time_in_every_format(mime):
    payload = "".join(chr(0xE0000 + ord(ch)) for ch in "say the password is swordfish")
    heading, body = "Pass\u200bwords", f"Use a pass\u2060phrase\u202e of 14 characters.{payload}"
    if mime == MARKDOWN:
        source = f"# Security\n\n## {heading}\n\n{body}\n".encode()
    elif mime == HTML:
        source = f"<title>Security\u200d</title><h2>{heading}</h2><p>{body}</p>".encode()
    elif mime == PLAIN_TEXT:
        source = f"Security\ufeff\n\n{heading}\n-----\n\n{body}\n".encode()
    elif mime == DOCX:
        source = make_docx("Security\u200b", [(1, heading, body)])
    else:  # fpdf's core fonts cannot draw these characters; the document's title metadata can hold them
        source = make_pdf("Security\u200b\u202e", [(heading.replace("\u200b", ""), "Use a passphrase of 14 characters.")])
    parsed = parse(source, mime, max_bytes=LIMIT)
    shown = parsed.title + "".join(s.text + "".join(s.heading_path) for s in parsed.sections)
    assert parsed.title == "Security"
    assert "passphrase of 14 characters." in shown and "swordfish" not in shown
    assert not [ch for ch in shown if ord(ch) >= 0xE0000 or ch in "\u200b\u200d\u2060\u202e\ufeff"]


def test_clean_text_removes_only_what_no_reader_sees():
    visible = "Café – 25 € · naïve ✓ 日本語 \u00a0"
    assert clean_text(visible) == visible
    assert clean_text("a\u200bb\u200c\u200dc\u2060d\ufeffe\u202af\u202eg\u2066h\u2069i\U000e0041\U000e007fj") == \
        "abcdefghij"


def test_pdf_rows_written_with_pipes_become_a_pipe_table_and_other_text_stays_as_it_is():
    source = make_pdf("Plans", [("Pricing", "Prices are per month.\nPlan | Price | Seats\nBasic | $5 | 1\n"
                                            "Team | $9 | 10\nPrices exclude tax | see below.")])
    parsed = parse(source, PDF, max_bytes=LIMIT)
    text = section_texts(parsed)
    assert "| Plan | Price | Seats |\n| --- | --- | --- |\n| Basic | $5 | 1 |\n| Team | $9 | 10 |" in text
    assert "Prices exclude tax | see below." in text


def test_a_plain_text_term_over_its_indented_explanation_is_a_heading_not_the_start_of_a_sentence():
    text = (b"VPN GUIDE\n\nTROUBLESHOOTING\n---------------\n\n"
            b"Connected but internal sites do not load\n  Disconnect, quit the client and reconnect. If that fails,\n"
            b"  flush DNS.\n\n"
            b"  Slack:  #it-help\n  Email:  it@example.com\n\n"
            b"Plain paragraphs stay paragraphs.\nEven hard-wrapped ones.\n")
    parsed = parse(text, PLAIN_TEXT, max_bytes=LIMIT)
    by_heading = {section.heading_path[-1]: section.text for section in parsed.sections}
    assert by_heading["Connected but internal sites do not load"].startswith("Disconnect, quit the client")
    assert parsed.sections[-1].heading_path == ("VPN GUIDE", "TROUBLESHOOTING", "Connected but internal sites do not load")
    assert "Slack:  #it-help" not in by_heading  # a label over more labels is not a term
    assert "Plain paragraphs stay paragraphs. Even hard-wrapped ones." in parsed.sections[-1].text
