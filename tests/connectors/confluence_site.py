"""The Confluence site the connector tests sync (Cloud and Data Center serve the same scenario), and the oracle:
who may read each page, blog post and attachment, worked out from the scenario with plain set logic, never from the
connector: the space's read grant AND every restricted ancestor AND the item's own restriction (an attachment: its
page's or blog post's readers), groups expanded through nesting, nobody for an item whose restriction (or an
ancestor's) cannot be read, nobody in a space granting to a principal type the connector does not know; nothing
at all from an archived space or the trash."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth import get_user_model

from answers.services import ask
from connectors import services as connectors
from connectors.models import Document, Source
from identity.models import Account, ExternalIdentity
from identity.selectors import principals_for
from retrieval.selectors import search
from search.types import SearchMode

TOKEN = "zephyr"
EMAIL, API_TOKEN = "citewise-bot@corp.example", "tok-do-not-log"
USERS = {"alice": "u-alice", "bob": "u-bob", "carol": "u-carol", "dave": "u-dave", "erin": "u-erin"}
LISTED_AT = datetime(2025, 3, 2, 12, 0, 30, tzinfo=UTC)


def page(space: str, parent: str | None, title: str, word: str, restrict: dict | None = None) -> dict:
    body = (f"<h1>{title}</h1><p>The {TOKEN} {word} procedure: ask the {word} desk before the {word} review.</p>"
            f'<ac:structured-macro ac:name="info"><ac:rich-text-body><p>{word} note</p></ac:rich-text-body>'
            f"</ac:structured-macro>")
    return {"space": space, "parent": parent, "title": title, "body": body, "restrict": restrict}


def blogpost(space: str, title: str, word: str, restrict: dict | None = None) -> dict:
    body = f"<p>News: the {TOKEN} {word} announcement, from the {word} team.</p>"
    return {"space": space, "title": title, "body": body, "restrict": restrict}


def attachment(container: str, title: str, word: str, media_type: str = "text/markdown") -> dict:
    return {"container": container, "title": title, "mediaType": media_type,
            "data": f"# {word.title()} notes\n\nThe {TOKEN} {word} checklist: file the {word} form first.\n"}


def scenario() -> dict:
    return {
        # Emails in mixed case: principals are lower-cased.
        "users": {"u-alice": "Alice@Corp.example", "u-bob": "bob@corp.example", "u-carol": "carol@corp.example",
                  "u-dave": "dave@corp.example", "u-erin": "erin@partner.example", "u-admin": "admin@corp.example"},
        # "group:<name>" is a nested group (Data Center style): its members are members too.
        "groups": {"engineering": ["u-alice", "u-bob", "group:sre"], "hr": ["u-bob", "u-carol"],
                   "staff": ["u-alice", "u-bob", "u-carol", "u-dave"], "contractors": ["u-erin"],
                   "sre": ["u-erin"], "oncall": ["group:sre"]},
        "spaces": {
            "ENG": {"id": "100", "read": {"groups": ["engineering"], "users": ["u-dave"]}},
            "HR": {"id": "200", "read": {"groups": ["hr"]}},
            "ALL": {"id": "300", "read": {"groups": ["staff", "contractors"]}},
            # Read also granted to a role: the connector cannot say who holds it, so nobody reads the space.
            "OPS": {"id": "400", "read": {"groups": ["staff"], "other": [{"type": "role", "id": "r-ops"}]}},
            "OLD": {"id": "500", "read": {"groups": ["staff"]}, "status": "archived"},
            "ARC": {"id": "700", "read": {"groups": ["staff"]}},
        },
        "pages": {
            "101": page("ENG", None, "Engineering handbook", "kestrel"),
            "102": page("ENG", "101", "Deploys", "lantern"),
            # A restricted page under an open parent, and its child inheriting the restriction.
            "103": page("ENG", "101", "Incident secrets", "marmot", {"users": ["u-alice"], "groups": []}),
            "104": page("ENG", "103", "Incident follow-ups", "nebula"),
            "105": page("ENG", "101", "Engineering salaries", "oriole", {"users": [], "groups": ["hr"]}),
            # Restricted to a group whose only members come through a nested group.
            "106": page("ENG", "101", "Pager duty", "plover", {"users": [], "groups": ["oncall"]}),
            "107": page("ENG", "101", "Capacity plan", "quokka"),
            "201": page("HR", None, "People handbook", "quartz"),
            "202": page("HR", "201", "Reviews", "rosehip", {"users": ["u-dave"], "groups": ["hr"]}),
            "301": page("ALL", None, "Office guide", "saffron"),
            "302": page("ALL", "301", "Board minutes", "tundra"),
            "303": page("ALL", "302", "Board actions", "umber"),
            "401": page("OPS", None, "Ops rota", "vervain"),
            "501": page("OLD", None, "Old intranet", "walrus"),
            "701": page("ARC", None, "Project Arc", "yarrow"),
        },
        "blogposts": {
            "601": blogpost("ENG", "Release notes", "xenon"),
            "602": blogpost("HR", "Salary round", "yucca", {"users": ["u-carol"], "groups": []}),
        },
        "attachments": {
            "att901": attachment("103", "marmot-runbook.md", "mistral"),  # under a restricted page
            "att902": attachment("601", "xenon.txt", "xylem", "text/plain"),
            "att903": {"container": "101", "title": "diagram.png", "mediaType": "image/png", "data": "PNG"},
            "att904": attachment("202", "rosehip.md", "rowan"),
            "att905": attachment("602", "yucca.md", "yew"),
        },
        "forbidden": {"302"},  # the restriction lookup of 302 gets 403
    }


# -- the oracle: straight from the scenario, no connector code ---------------------------------------------------


def members(site: dict, group: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """Account ids in a group, through nested groups."""
    found: set[str] = set()
    for member in site["groups"].get(group, []):
        if member.startswith("group:"):
            nested = member.removeprefix("group:")
            if nested not in seen:
                found |= members(site, nested, seen | {group})
        else:
            found.add(member)
    return found


def allowed(site: dict, grant: dict) -> set[str]:
    """Account ids a grant names, directly or through a group."""
    return set(grant.get("users", [])) | {u for g in grant.get("groups", []) for u in members(site, g)}


def content_entry(site: dict, content_id: str) -> dict:
    return site["pages"].get(content_id) or site["blogposts"][content_id]


def readers(site: dict, content_id: str) -> set[str]:
    if content_id in site["attachments"]:
        return readers(site, site["attachments"][content_id]["container"])
    entry = content_entry(site, content_id)
    space = site["spaces"][entry["space"]]
    if space["read"].get("other"):
        return set()
    who = allowed(site, space["read"])
    current: str | None = content_id
    while current is not None:
        if current in site["forbidden"]:
            return set()
        restrict = content_entry(site, current)["restrict"]
        if restrict is not None:
            who &= allowed(site, restrict)
        current = content_entry(site, current).get("parent")
    return who


def indexed_ids(site: dict) -> dict[str, str]:
    """External id -> scenario id of everything a sync should index: current content of current spaces, and the
    attachments of it that a parser reads."""
    def live(entry: dict) -> bool:
        return (entry.get("status", "current") == "current"
                and site["spaces"][entry["space"]].get("status", "current") == "current")

    found = {f"page:{p}": p for p, entry in site["pages"].items() if live(entry)}
    found |= {f"blogpost:{b}": b for b, entry in site["blogposts"].items() if live(entry)}
    found |= {f"attachment:{a}": a for a, entry in site["attachments"].items()
              if entry.get("status", "current") == "current" and entry["mediaType"] != "image/png"
              and (f"page:{entry['container']}" in found or f"blogpost:{entry['container']}" in found)}
    return found


def expected_matrix(site: dict) -> dict[str, set[str]]:
    items = indexed_ids(site)
    return {user: {external for external, item in items.items() if account in readers(site, item)}
            for user, account in USERS.items()}


def make_users() -> dict:
    users = {}
    for name, account in USERS.items():
        user = get_user_model().objects.create_user(name, password="pw")
        Account.objects.create(user=user, status=Account.Status.EMPLOYEE)
        email = scenario()["users"][account]
        ExternalIdentity.objects.create(user=user, principal=f"email:{email}")
        users[name] = user
    return users


def sync(source: Source) -> None:
    report = connectors.sync_source(source)
    assert report.failed == 0 and report.listing_complete, report.errors
    connectors.sync_permissions(source)


def visible(users: dict, source: Source, mode: SearchMode) -> dict[str, set[str]]:
    external = dict(Document.objects.filter(source=source).values_list("id", "external_id"))
    seen = {}
    for name, user in users.items():
        hits = search(TOKEN, principals=principals_for(user), mode=mode, limit=1000)
        seen[name] = {external[h.document_id] for h in hits}
    return seen


def check_matrix(users: dict, source: Source, site_scenario: dict) -> None:
    expected = expected_matrix(site_scenario)
    assert set(Document.objects.filter(source=source).values_list("external_id", flat=True)) == set(
        indexed_ids(site_scenario))
    for mode in (SearchMode.BM25, SearchMode.HYBRID):
        seen = visible(users, source, mode)
        leaks = {u: seen[u] - expected[u] for u in users if seen[u] - expected[u]}
        denials = {u: expected[u] - seen[u] for u in users if expected[u] - seen[u]}
        assert not leaks and not denials, (mode, leaks, denials)
    # Answers cite only what the asker may read.
    urls = dict(Document.objects.filter(source=source).values_list("external_id", "url"))
    for name, user in users.items():
        readable = {urls[external] for external in expected[name]}
        result = ask("What is the marmot procedure and the mistral checklist?", principals=principals_for(user),
                     user=user)
        assert {c.url.split("#", 1)[0] for c in result.citations} <= readable, (name, result.citations)


def churn(site: dict) -> None:
    """What changes on the site between the matrix's two syncs (call with the stand-in's scenario lock held)."""
    churned = site
    churned["pages"]["101"]["restrict"] = {"users": [], "groups": ["engineering"]}  # on a parent
    churned["pages"]["107"]["parent"] = "103"  # moved under a page restricted to alice
    churned["pages"]["302"]["restrict"] = {"users": ["u-carol"], "groups": []}  # under an open parent
    churned["groups"]["hr"].remove("u-bob")
    churned["groups"]["sre"].append("u-dave")  # a nested group gains a member
    del churned["pages"]["102"]
    churned["blogposts"]["602"]["status"] = "trashed"  # with what is attached to it
    del churned["attachments"]["att902"]
    churned["spaces"]["ARC"]["status"] = "archived"
    churned["forbidden"] = set()
