"""The one parser of answer text (answers/formatting.py), its HTML, and the link and character guards."""

from __future__ import annotations

from answers.formatting import (
    LINK_REMOVED,
    Cite,
    Code,
    ItemList,
    Paragraph,
    Table,
    aligned,
    break_broadcasts,
    parse,
    plain,
    strip_foreign_links,
    strip_invisible,
    to_html,
)

TABLE_ANSWER = ("Vacation grows with seniority [1].\n\n"
                "| Years of service | Vacation days |\n| --- | --- |\n| 0 to 3 years | 15 days |\n"
                "| 3 to 6 years | 20 days |\n[1]")
CODE_ANSWER = "Restart the agent with [2]:\n\n```bash\nsudo systemctl restart vpn-agent && echo <ok>\n```\n\n[2]"
LIST_ANSWER = "To file a claim:\n\n1. Open the portal [1]\n2. Attach the receipts [1][3]\n\n- Claims close after 90 days [3]"
PARAGRAPH_ANSWER = "Hotel stays are capped at 240 euros per night [1]. Receipts are mandatory [1, 2]."


def href(number: int) -> str:
    return f"#src-abc-{number}"


def test_a_table_and_the_marker_line_after_it():
    blocks = parse(TABLE_ANSWER)
    assert blocks == [
        Paragraph(("Vacation grows with seniority", Cite((1,)), ".")),
        Table(header=(("Years of service",), ("Vacation days",)),
              rows=((("0 to 3 years",), ("15 days",)), (("3 to 6 years",), ("20 days",))), citations=(1,)),
    ]
    # A blank line between the table and its markers reads the same.
    assert parse(TABLE_ANSWER.replace("\n[1]", "\n\n[1]")) == blocks
    assert aligned(blocks[1]).splitlines() == ["Years of service | Vacation days", "-----------------+--------------",
                                               "0 to 3 years     | 15 days", "3 to 6 years     | 20 days"]


def test_code_lists_and_paragraphs():
    assert parse(CODE_ANSWER) == [
        Paragraph(("Restart the agent with", Cite((2,)), ":")),
        Code("sudo systemctl restart vpn-agent && echo <ok>", "bash", (2,)),
    ]
    first, second = parse(LIST_ANSWER)[1:]
    assert first == ItemList((("Open the portal", Cite((1,))), ("Attach the receipts", Cite((1, 3)))), ordered=True)
    assert second == ItemList((("Claims close after 90 days", Cite((3,))),))
    (paragraph,) = parse(PARAGRAPH_ANSWER)
    assert paragraph == Paragraph(("Hotel stays are capped at 240 euros per night", Cite((1,)), ". Receipts are "
                                   "mandatory", Cite((1, 2)), "."))
    assert plain(paragraph.content) == "Hotel stays are capped at 240 euros per night [1]. Receipts are mandatory [1][2]."


def test_html_has_native_structure_and_citation_links_only():
    html = to_html(TABLE_ANSWER, href)
    assert html.startswith('<p>Vacation grows with seniority <a class="cite" href="#src-abc-1" aria-label="source 1">'
                           "[1]</a>.</p>")
    assert "<table><thead><tr><th>Years of service</th><th>Vacation days</th></tr></thead><tbody>" in html
    assert "<tr><td>3 to 6 years</td><td>20 days</td></tr></tbody></table>" in html
    assert html.endswith('<p class="cites"><a class="cite" href="#src-abc-1" aria-label="source 1">[1]</a></p>')
    assert ('<pre><code class="language-bash">sudo systemctl restart vpn-agent &amp;&amp; echo &lt;ok&gt;</code></pre>'
            in to_html(CODE_ANSWER, href))
    lists = to_html(LIST_ANSWER, href)
    assert "<ol><li>Open the portal <a" in lists and "<ul><li>Claims close after 90 days <a" in lists


def test_document_text_cannot_inject_html_links_or_images():
    hostile = ('<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) '
               '![logo](https://evil.example/pixel.png) <https://evil.example> "quoted" [1].\n\n'
               "[1]: https://evil.example/reference\n\n"
               "| <b>x</b> | y |\n| --- | --- |\n| [a](https://evil.example) | 2 |\n[1]")
    html = to_html(hostile, href)
    assert "<script" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert 'href="javascript' not in html and "pixel.png" not in html
    # Every link left is a citation marker; the reference definition did not turn [1] into a link elsewhere.
    assert html.count("<a ") == html.count('<a class="cite" href="#src-abc-') == 3
    assert "click" in html and "logo" in html  # link and image text stays, as text


def test_strip_foreign_links_keeps_only_cited_sources():
    text = ("Book via [the portal](https://evil.example/book) or https://evil.example/login, see "
            "![badge](http://evil.example/b.png) <https://evil.example/x> <https://evil.example/y|here> "
            "www.evil.example and https://wiki.example/travel. [1]")
    cleaned = strip_foreign_links(text, ["https://wiki.example/travel#hotels"])
    assert "evil" not in cleaned
    assert cleaned == (f"Book via the portal or {LINK_REMOVED}, see badge {LINK_REMOVED} here {LINK_REMOVED} and "
                       "https://wiki.example/travel. [1]")


def test_invisible_characters_and_broadcast_keywords():
    assert strip_invisible("pass\u200bword\U000e0041\U000e0042 \u202eevil\u202c ok\u200d") == "password evil ok\u200d"
    assert parse("Hid\u200bden [1].") == [Paragraph(("Hidden", Cite((1,)), "."))]
    assert break_broadcasts("@here @Channel @everyone @hereafter mail@here.example") == (
        "＠here ＠Channel ＠everyone @hereafter mail＠here.example")
