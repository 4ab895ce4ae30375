from __future__ import annotations

import pytest

from connectors.parsing import DOCX, HTML, MARKDOWN, PDF, PLAIN_TEXT, ParseError, parse
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
