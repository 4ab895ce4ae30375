"""Documents open for those who may read them: web pages at their source (at the cited section), everything else in
the built-in viewer at the cited section; anyone else gets the same 404 as for a document that does not exist."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.test import Client

from audit.models import AuditEvent
from connectors import services as connectors
from connectors.models import Source
from connectors.parsing import Section
from retrieval.services import DocumentToIndex, index_documents, update_acls
from search.types import DocumentAcl, IndexedDocument
from tests.console.conftest import finance_document, public_document, write_corpus, write_manifest

pytestmark = pytest.mark.django_db

HOSTILE = ('Click <script>alert("owned")</script> and <img src=x onerror="alert(1)"> & "quotes" '
           "</section></article><a href='javascript:alert(2)'>here</a>")


def viewer(document_id: str, section: int | None = None) -> str:
    return f"/documents/{document_id}" + (f"?section={section}" if section is not None else "")


def web_document(document_id: str, source_id: str, url: str, *, mime: str = "text/html",
                 acl: DocumentAcl | None = None) -> DocumentToIndex:
    return DocumentToIndex(
        IndexedDocument(document_id=document_id, source_id=source_id, title="Ferry handbook", url=url,
                        mime_type=mime, modified_at=datetime(2026, 2, 1, tzinfo=UTC),
                        acl=acl or DocumentAcl.public_ok()),
        [Section(("Ferry handbook",), "Boarding starts thirty minutes before departure."),
         Section(("Ferry handbook", "Getting Started (v2)"), "Show your ticket at the gangway.")],
    )


@pytest.fixture
def handbook(tmp_path, isolated_index):
    """The shared corpus plus a public Markdown handbook with three sections."""
    folder = write_corpus(tmp_path / "docs")
    (folder / "public" / "handbook.md").write_text(
        "# Handbook\n\nWelcome to the company.\n\n## Parking\n\nVisitors park on level P2.\n\nStaff park on P3.\n\n"
        "## Lockers\n\nLockers are on every floor.\n")
    source = connectors.ensure_source("filesystem", folder, name=f"corpus-{uuid.uuid4().hex[:6]}")
    connectors.sync_source(source)
    connectors.sync_permissions(source)
    return source


def handbook_document(source: Source):
    return source.documents.get(external_id="public/handbook.md")


def test_the_viewer_shows_the_indexed_text_in_order_and_marks_the_cited_section(client, handbook, alice):
    client.force_login(alice)
    document = handbook_document(handbook)

    page = client.get(viewer(document.id, 1))
    assert page.status_code == 200, page.content
    html = page.content.decode()
    assert "<h1 id=\"document-title\">Handbook</h1>" in html
    welcome, parking, lockers = (html.index(text) for text in ("Welcome to the company.", "Visitors park on level P2.",
                                                                  "Lockers are on every floor."))
    assert welcome < parking < lockers
    assert '<section id="section-1" class="cited" aria-current="location">' in html
    assert html.count('class="cited"') == 1 and '<h2>Parking</h2>' in html
    assert "<p>Visitors park on level P2.</p><p>Staff park on P3.</p>" in html
    assert page.context["sections"][1]["cited"] and not page.context["sections"][0]["cited"]

    plain = client.get(viewer(document.id)).content.decode()
    assert 'class="cited"' not in plain and 'id="section-2"' in plain
    # A section the document no longer has, or a malformed one: the document, nothing marked.
    for section in ("99", "-1", "1; drop", "x"):
        shown = client.get(f"{viewer(document.id)}?section={section}")
        assert shown.status_code == 200 and 'class="cited"' not in shown.content.decode(), section


def test_document_text_is_escaped_never_markup(client, isolated_index, alice):
    index_documents([DocumentToIndex(
        IndexedDocument(document_id="hostile", source_id="5", title="<b>Bold</b> title", url="file:///srv/x.txt",
                        mime_type="text/plain", modified_at=None),
        [Section(("<i>Heading</i>",), "Fine."), Section(("<i>Heading</i>", "Markup"), HOSTILE)])])
    client.force_login(alice)
    html = client.get(viewer("hostile", 1)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<a href='javascript" not in html
    assert "<b>Bold" not in html and "<i>Heading" not in html
    assert "&lt;b&gt;Bold&lt;/b&gt; title" in html and "&lt;i&gt;Heading&lt;/i&gt;" in html
    assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &quot;quotes&quot;" in html
    assert "&lt;/section&gt;&lt;/article&gt;" in html
    # The page's own markup still closes where it should: one article, its sections intact.
    assert html.count("<article") == 1 and html.count("</article>") == 1 and html.count("</section>") == 2


def test_who_may_not_read_it_gets_the_404_of_a_document_that_does_not_exist(handbook, alice, bob, settings):
    settings.DEBUG = False
    budget = finance_document(handbook)
    alice_client, bob_client = Client(), Client()
    alice_client.force_login(alice)
    bob_client.force_login(bob)

    assert alice_client.get(viewer(budget.id, 0)).status_code == 200
    forbidden = bob_client.get(viewer(budget.id, 0))
    missing = bob_client.get(viewer("f" * 32, 0))
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.content == missing.content and b"Page not found" in forbidden.content
    assert b"Travel budget" not in forbidden.content and b"40,000" not in forbidden.content
    assert Client().get(viewer(budget.id)).status_code == 302  # signed out: to the sign-in page

    # Revoked at the source: gone for alice too after the next permission sync.
    write_manifest(Path(handbook.location), finance_members=[])
    connectors.sync_permissions(handbook)
    assert alice_client.get(viewer(budget.id, 0)).status_code == 404

    # Permissions the source could not tell: nobody reads it.
    update_acls([(public_document(handbook).id, DocumentAcl(status="unknown"))])
    assert alice_client.get(viewer(public_document(handbook).id)).status_code == 404

    events = [(e.actor.username, e.detail["visible"]) for e in AuditEvent.objects.filter(
        action="document.read", object_id=budget.id).order_by("id")]
    assert events == [("alice", True), ("bob", False), ("alice", False)]


def test_open_sends_files_to_the_viewer_at_the_section_and_web_pages_to_their_source(client, handbook, alice, bob):
    document = handbook_document(handbook)
    client.force_login(alice)
    opened = client.get(f"/documents/{document.id}/open?section=1")
    assert opened.status_code == 302
    assert opened["Location"] == f"/documents/{document.id}?section=1#section-1"
    assert client.get(f"/documents/{document.id}/open")["Location"] == f"/documents/{document.id}"

    confluence = Source.objects.create(name="wiki", kind=Source.Kind.CONFLUENCE, location="https://wiki.example")
    page_url = "https://wiki.example/wiki/spaces/OPS/pages/42/Ferry+handbook"
    index_documents([web_document("ferry", str(confluence.pk), page_url),
                     web_document("intranet", "77", "https://intranet.example/ferry.html"),
                     web_document("private", "77", "https://intranet.example/private.html",
                                  acl=DocumentAcl(principals=frozenset({"group:board"}), status="ok"))])
    # At the section, the way the source links to its headings (as the citation's own URL does).
    assert client.get("/documents/ferry/open?section=1")["Location"] == f"{page_url}#Getting-Started-(v2)"
    assert client.get("/documents/ferry/open")["Location"] == page_url
    assert client.get("/documents/intranet/open?section=1")["Location"] == (
        "https://intranet.example/ferry.html#getting-started-v2")
    assert client.get("/documents/intranet/open?section=9")["Location"] == "https://intranet.example/ferry.html"
    assert client.get("/documents/private/open").status_code == 404

    # The viewer shows a web page's indexed text too, with the way to its source.
    html = client.get(viewer("intranet", 1)).content.decode()
    assert 'href="https://intranet.example/ferry.html"' in html and "Show your ticket at the gangway." in html

    client.force_login(bob)
    assert client.get(f"/documents/{finance_document(handbook).id}/open?section=0").status_code == 404


def test_the_search_page_links_each_hit_through_open_at_its_section(client, handbook, alice):
    client.force_login(alice)
    html = client.get("/", {"q": "visitors park level"}).content.decode()
    document = handbook_document(handbook)
    assert f'href="/documents/{document.id}/open?section=1"' in html
    assert "file://" not in html


def test_a_citation_names_its_section_for_the_viewer(corpus, alice):
    from answers import services as answering
    from identity.selectors import principals_for

    result = answering.ask("What is the travel budget for 2025?", principals=principals_for(alice), user=alice,
                           surface="web").as_dict()
    assert result["citations"] and all(c["section_ordinal"] == 0 for c in result["citations"])


def test_citations_and_open_link_to_a_section_the_same_way(db):
    from connectors.selectors import section_link, with_section_links
    from search.types import SearchHit

    wiki = Source.objects.create(name="wiki", kind=Source.Kind.CONFLUENCE, location="https://wiki.example")
    files = Source.objects.create(name="files", kind=Source.Kind.FILESYSTEM, location="/srv/docs")
    page = "https://wiki.example/wiki/spaces/OPS/pages/42/Ferry"

    def hit(source: Source, url: str, heading_path: tuple[str, ...]) -> SearchHit:
        return SearchHit(chunk_id="c", document_id="d", source_id=str(source.pk), title="t", url=url,
                         mime_type="text/html", modified_at=None, heading_path=heading_path, section_ordinal=1,
                         text="", score=1.0, bm25_rank=1, dense_rank=None, highlight="")

    linked = with_section_links([hit(wiki, page, ("Ferry", "Getting Started (v2)")), hit(wiki, f"{page}#x", ("A",)),
                                 hit(wiki, page, ()), hit(files, "file:///srv/docs/a.md", ("A", "B"))])
    assert [h.url for h in linked] == [f"{page}#Getting-Started-(v2)", f"{page}#x", page, "file:///srv/docs/a.md"]
    assert section_link(str(wiki.pk), page, ("Ferry", "Getting Started (v2)")) == linked[0].url
    assert section_link(str(files.pk), "https://x.example/a", ("A",)) == "https://x.example/a"
    assert section_link("beir-corpus", "https://x.example/a", ("A",)) == "https://x.example/a"
