"""Sync 10,000 items from a source's stand-in through the real pipeline: full, incremental and permission runs.

    python benchmarks/connector_sync.py --source confluence|sharepoint|slack [--items 10000] [--changed 100] [--backend embedded]
        [--dataset ../shared/data/beir/scifact] [--output benchmarks/results/connector-sync-confluence.json]

Pages (or files) carry real text: a SciFact title and the first sentence of its abstract (one chunk each, so that
embedding, measured by benchmarks/ingest_scifact.py, does not drown the connector's own cost), reused with a
numbered title past the corpus's 5,183. A tenth
of them sit in restricted subtrees and a few groups grant reading, so permission work is not trivial. The stand-in
serves 250 items per listing page (the connectors ask for that many) from a thread of this process, so the peak RSS
below includes it and the embedding model. Reported per run: seconds, documents/s, the run's counts; the
incremental run follows `--changed` edits and one deletion; RSS is the process's peak (ru_maxrss) and its growth
over the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def scifact_texts(dataset: Path, count: int) -> list[tuple[str, str]]:
    """`count` (title, first sentence) pairs from the corpus, reused with a numbered title once it runs out."""
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as corpus:
        records = [json.loads(line) for line in corpus if line.strip()]
    texts = []
    for number in range(count):
        record = records[number % len(records)]
        title = record.get("title") or record["_id"]
        first_sentence = record["text"].split(". ")[0].rstrip(".") + "."
        texts.append((title if number < len(records) else f"{title} ({number // len(records)})", first_sentence))
    return texts


def current_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def confluence_scenario(texts: list[tuple[str, str]]) -> dict[str, Any]:
    users = {f"u-{n}": f"user{n}@corp.example" for n in range(200)}
    groups = {f"team-{g}": [f"u-{n}" for n in range(g * 20, g * 20 + 20)] for g in range(10)}
    spaces = {f"S{s}": {"id": str(1000 + s), "read": {"groups": [f"team-{s}", f"team-{(s + 1) % 10}"]}}
              for s in range(10)}
    pages: dict[str, dict[str, Any]] = {}
    for number, (title, text) in enumerate(texts):
        space = f"S{number % 10}"
        page_id = str(100000 + number)
        # Every tenth page heads a restricted subtree of the next nine in its space.
        parent = None if number % 100 < 10 else str(100000 + number - number % 100 + number % 10)
        restrict = {"groups": [f"team-{number % 10}"], "users": []} if number % 100 < 10 and number % 3 == 0 else None
        pages[page_id] = {"space": space, "parent": parent, "title": title, "restrict": restrict,
                          "body": f"<h1>{title}</h1><p>{text}</p>", "modified": "2025-03-01T10:00:00.000Z"}
    return {"users": users, "groups": groups, "spaces": spaces, "pages": pages}


TENANT = "5f0c3a1e-0000-4000-8000-00000000be0c"
STANDIN_SECRET = "bench-secret"  # the stand-in's, not a real credential


def sharepoint_scenario(texts: list[tuple[str, str]]) -> dict[str, Any]:
    users = {f"u-{n}": {"name": f"User {n}", "mail": f"user{n}@corp.example", "upn": f"user{n}@corp.example"}
             for n in range(200)}
    groups = {f"g-{g}": {"name": f"Team {g}", "members": [f"u-{n}" for n in range(g * 20, g * 20 + 20)]}
              for g in range(10)}
    groups["g-all"] = {"name": "Everyone in teams", "members": [f"g-{g}" for g in range(10)]}  # nested
    sites = {f"s{s}": {"path": f"/sites/team{s}", "name": f"Team {s}"} for s in range(10)}
    drives = {f"d{s}": {"site": f"s{s}", "name": "Documents", "grants": [{"group": f"g-{s}", "roles": ["write"]}]}
              for s in range(10)}
    items: dict[str, dict[str, Any]] = {}
    for s in range(10):
        items[f"f{s}"] = {"drive": f"d{s}", "parent": None, "name": "Shared", "folder": True, "grants": None}
    for number, (title, text) in enumerate(texts):
        drive = number % 10
        # Every tenth file has its own grants (broken inheritance); every 50th is shared with a link.
        grants = None
        if number % 10 == 0:
            grants = [{"group": f"g-{(drive + 1) % 10}"}, {"user": f"u-{number % 200}"}]
        if number % 50 == 0:
            grants = [{"group": "g-all"}, {"link": "organization"}]
        items[f"i{number}"] = {"drive": f"d{drive}", "parent": f"f{drive}" if number % 2 else None,
                               "name": f"{title[:80].replace('/', ' ')} {number}.txt", "body": f"{title}\n\n{text}\n",
                               "grants": grants}
    return {"tenant": TENANT, "users": users, "groups": groups, "sites": sites, "drives": drives, "items": items,
            "forbidden": set()}


def google_drive_scenario(texts: list[tuple[str, str]]) -> dict[str, Any]:
    from tests.standins.google_drive import DOCUMENT, DRIVE_SCOPE, FOLDER, GROUP_SCOPE, USER_SCOPE

    users = [f"user{n}@corp.example" for n in range(20)]
    groups = {f"team{g}@corp.example": {"name": f"Team {g}", "members": users[g * 2:g * 2 + 2]} for g in range(10)}
    groups["all-teams@corp.example"] = {"name": "All teams", "members": list(groups)}  # nested
    drives = {f"0Ad{d}": {"name": f"Drive {d}", "members": [
        {"type": "group", "email": f"team{d}@corp.example", "role": "writer"},
        {"type": "user", "email": "admin@corp.example", "role": "organizer"}]} for d in range(5)}
    files: dict[str, dict[str, Any]] = {}
    for d in range(5):
        files[f"fold-d{d}"] = {"name": "Shared", "mime": FOLDER, "drive": f"0Ad{d}", "parent": None,
                               "grants": [{"type": "group", "email": "all-teams@corp.example", "role": "reader"}]}
    for u, owner in enumerate(users):
        files[f"fold-u{u}"] = {"name": "Projects", "mime": FOLDER, "owner": owner, "parent": None,
                               "grants": [{"type": "group", "email": f"team{u % 10}@corp.example"}]}
    for number, (title, text) in enumerate(texts):
        # Half in users' My Drives, half in shared drives; every third a Google Doc (exported), the rest uploads;
        # every tenth shared with someone else, every 50th by link.
        grants: list[dict[str, Any]] = []
        if number % 10 == 0:
            grants.append({"type": "user", "email": users[(number // 10) % 20], "role": "commenter"})
        if number % 50 == 0:
            grants.append({"type": "anyone", "role": "reader"})
        where: dict[str, Any]
        if number % 2:
            owner = users[number % 20]
            where = {"owner": owner, "parent": f"fold-u{number % 20}" if number % 4 == 1 else None}
        else:
            where = {"drive": f"0Ad{number % 5}", "parent": f"fold-d{number % 5}" if number % 4 == 0 else None}
        document = number % 3 == 0
        files[f"f{number}"] = {"name": title[:80] if document else f"{title[:80]} {number}.txt",
                               "mime": DOCUMENT if document else "text/plain", "body": f"{title}\n\n{text}\n",
                               "grants": grants, **where}
    return {"domain": "corp.example", "customer": "C0bench", "service_account": GOOGLE_SERVICE_ACCOUNT,
            "authorized_scopes": {DRIVE_SCOPE, GROUP_SCOPE, USER_SCOPE}, "admins": {"admin@corp.example"},
            "users": {u: {} for u in users}, "groups": groups, "drives": drives, "files": files, "forbidden": set()}


GOOGLE_SERVICE_ACCOUNT = "citewise-bench@bench.iam.gserviceaccount.com"
SLACK_TOKEN = "xoxb-bench-standin"  # the stand-in's, not a real credential


def slack_scenario(texts: list[tuple[str, str]]) -> dict[str, Any]:
    """20 channels (every fourth private, with its own members), messages over the last 400 days: every fifth
    opens a thread of two replies (one document), the others fall into channel-days (several messages each), so
    `items` messages make about a third as many documents."""
    now = int(time.time())
    users = [f"U{n:04d}" for n in range(200)]
    channels = {f"C{c:03d}": {"name": f"team-{c}", "is_private": c % 4 == 0, "is_member": True} for c in range(20)}
    members = {cid: [*(users[(c * 10 + k) % 200] for k in range(20)), "UBOT"] for c, cid in enumerate(channels)}
    history: dict[str, list[dict[str, Any]]] = {cid: [] for cid in channels}
    for number, (title, text) in enumerate(texts):
        cid = f"C{number % 20:03d}"
        ts = f"{now - (len(texts) - number) * 3000}.{number % 1000000:06d}"
        author = members[cid][number % 20]
        history[cid].append({"ts": ts, "user": author, "text": f"*{title}*: {text}"})
        if number % 5 == 0:
            for answer in (1, 2):
                history[cid].append({"ts": f"{int(ts.split('.')[0]) + answer * 60}.{number % 1000000:06d}",
                                     "user": members[cid][(number + answer) % 20], "thread_ts": ts,
                                     "text": f"Re {title}: noted ({answer})."})
    emails = {user: f"{user.lower()}@corp.example" for user in users}
    return {"channels": channels, "members": members, "history": history, "emails": emails}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["confluence", "sharepoint", "google_drive", "slack", "web"],
                        default="confluence")
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/beir/scifact")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="citewise-bench-connector-"))
    from cryptography.fernet import Fernet

    os.environ.update(DJANGO_SETTINGS_MODULE="console.settings.local", CITEWISE_VAR_DIR=str(var_dir),
                      CITEWISE_SEARCH_BACKEND=args.backend, CITEWISE_INDEX_NAME=f"bench-connector-{var_dir.name[-8:]}",
                      CITEWISE_ENCRYPTION_KEY=Fernet.generate_key().decode(), HF_HUB_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1", DJANGO_DEBUG="0")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from connectors import services
    from retrieval.embeddings import get_embedder
    from tests.standins.confluence import ConfluenceStandIn

    get_embedder().embed_query("warm up")  # the model's load is not the sync's cost
    texts = scifact_texts(args.dataset, args.items)
    results: dict[str, Any] = {
        "date": datetime.now(tz=UTC).date().isoformat(),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "source": args.source, "backend": args.backend, "items": args.items,
    }
    if args.source == "confluence":
        from tests.standins.confluence import ConfluenceStandIn

        scenario = confluence_scenario(texts)
        email = "citewise-bench@corp.example"
        standin: Any = ConfluenceStandIn(scenario, email=email, api_token=STANDIN_SECRET, page_size=250)

        def source_of(url: str) -> Any:
            return services.ensure_source("confluence", url, config={"email": email},
                                          secrets={"api_token": STANDIN_SECRET})
    elif args.source == "web":
        from tests.standins.website import WebsiteStandIn

        scenario = web_scenario(texts)
        standin = WebsiteStandIn(scenario)

        def source_of(url: str) -> Any:
            return services.ensure_source("web", f"{url}/docs/", config={
                "delay_s": 0, "max_depth": 3, "max_pages": len(scenario["pages"])})
    elif args.source == "google_drive":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        from tests.standins.google_drive import DIRECTORY, DRIVE, GoogleDriveStandIn, service_account_key

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_json = service_account_key(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()).decode(), GOOGLE_SERVICE_ACCOUNT)
        scenario = google_drive_scenario(texts)
        standin = GoogleDriveStandIn(scenario, public_key=key.public_key(), page_size=250)

        def source_of(url: str) -> Any:
            return services.ensure_source(
                "google_drive", url, secrets={"service_account_key": key_json},
                config={"domain": "corp.example", "admin_email": "admin@corp.example", "drive_url": f"{url}{DRIVE}",
                        "directory_url": f"{url}{DIRECTORY}", "token_url": f"{url}/token"})
    elif args.source == "slack":
        from tests.standins.slack import SlackStandIn

        scenario = slack_scenario(texts)
        standin = SlackStandIn(team_id="T1")
        standin.token, standin.max_page = SLACK_TOKEN, 200
        standin.channels, standin.members, standin.history = (scenario["channels"], scenario["members"],
                                                              scenario["history"])
        standin.emails.update(scenario["emails"])

        def source_of(url: str) -> Any:
            return services.ensure_source("slack", "https://t1.slack.test", secrets={"bot_token": SLACK_TOKEN},
                                          config={"team_id": "T1", "api_url": f"{url}/api"})
    else:
        from tests.standins.graph import GRAPH, GraphStandIn

        scenario = sharepoint_scenario(texts)
        standin = GraphStandIn(scenario, client_id="bench-app", client_secret=STANDIN_SECRET, page_size=200)

        def source_of(url: str) -> Any:
            return services.ensure_source(
                "sharepoint", url, secrets={"client_secret": STANDIN_SECRET},
                config={"tenant_id": TENANT, "client_id": "bench-app", "graph_url": f"{url}{GRAPH}", "login_url": url})
    with standin:
        source = source_of(standin.url)
        rss_before = current_rss_kib()
        results["full"] = timed(lambda: services.run_sync(source, "full"), args.items)
        results["rss_growth_full_mib"] = round((current_rss_kib() - rss_before) / 1024, 1)
        with standin.scenario_lock:
            edit(args.source, scenario, args.changed)
        if args.source == "slack":
            results["documents"] = results["full"]["counts"].get("added")
        results["incremental"] = timed(lambda: services.run_sync(source, "incremental"), args.changed)
        results["permissions"] = timed(lambda: services.run_sync(source, "permissions"), args.items)
        if args.source == "slack":  # no id listing (see connectors/sources/slack.py): full runs prune
            results["groups"] = timed(lambda: services.run_sync(source, "groups"), args.items)
        else:
            results["prune"] = timed(lambda: services.run_sync(source, "prune"), args.items)
        results["requests_served"] = len(standin.requests)
    results["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    output = args.output or ROOT / f"benchmarks/results/connector-sync-{args.source}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def web_scenario(texts: list[tuple[str, str]]) -> dict[str, Any]:
    """A site of `len(texts)` pages: /docs/ links to a hundred section pages, each to its share of the rest; every
    page has its text, an ETag and a Last-Modified time, inside navigation and a footer the reader drops."""
    sections = min(100, len(texts))
    pages: dict[str, dict[str, Any]] = {}
    for number, (title, text) in enumerate(texts):
        path = f"/docs/section-{number}/" if number < sections else f"/docs/section-{number % sections}/{number}"
        pages[path] = {"title": title, "text": f"<p>{text}</p>", "links": [], "modified": "2025-03-01T10:00:00Z"}
        if number >= sections:
            pages[f"/docs/section-{number % sections}/"]["links"].append(path)
    pages["/docs/"] = {"title": "Handbook", "text": "<p>The handbook of the research library, by section.</p>",
                       "links": [f"/docs/section-{n}/" for n in range(sections)]}
    return {"robots": "User-agent: *\nDisallow: /private/\n", "sitemaps": {}, "pages": pages}


def edit(kind: str, scenario: dict[str, Any], changed: int) -> None:
    """`changed` items edited and one deleted, as the next incremental run should find them."""
    if kind == "web":
        leaves = [path for path in scenario["pages"] if path.count("/") == 3 and not path.endswith("/")]
        for path in leaves[:changed]:
            scenario["pages"][path]["text"] += "<p>Edited for the incremental benchmark.</p>"
        scenario["pages"].pop(leaves[-1])  # a 404 from now on
        return
    if kind == "slack":
        # The newest messages (within the look-back window) are edited; the newest thread is deleted.
        stamp = f"{int(time.time())}.000000"
        recent = sorted((m for messages in scenario["history"].values() for m in messages if "thread_ts" not in m),
                        key=lambda m: float(m["ts"]), reverse=True)
        for message in recent[:changed]:
            message["text"] += " (edited for the incremental benchmark)"
            message["edited"] = {"user": message["user"], "ts": stamp}
        for messages in scenario["history"].values():
            parents = {m["thread_ts"] for m in messages if "thread_ts" in m}
            if parents:
                newest = max(parents, key=float)
                messages[:] = [m for m in messages if m["ts"] != newest and m.get("thread_ts") != newest]
                return
        return
    if kind == "confluence":
        later = (datetime.now(tz=UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        for page_id in list(scenario["pages"])[:changed]:
            page = scenario["pages"][page_id]
            page["body"] += "<p>Edited for the incremental benchmark.</p>"
            page["modified"], page["version"] = later, page.get("version", 1) + 1
        scenario["pages"].pop(list(scenario["pages"])[-1])
        return
    if kind == "google_drive":
        edited = [file_id for file_id, found in scenario["files"].items() if not file_id.startswith("fold-")]
        for file_id in edited[:changed]:
            scenario["files"][file_id]["body"] += "Edited for the incremental benchmark.\n"
        scenario["files"].pop(edited[-1])
        return
    files = [item_id for item_id, item in scenario["items"].items() if not item.get("folder")]
    for item_id in files[:changed]:
        scenario["items"][item_id]["body"] += "Edited for the incremental benchmark.\n"
    scenario["items"].pop(files[-1])


def timed(run_sync: Any, items: int) -> dict[str, Any]:
    started = time.perf_counter()
    run = run_sync()
    seconds = time.perf_counter() - started
    counts = {name: getattr(run, name) for name in ("seen", "added", "updated", "unchanged", "deleted", "failed",
                                                    "permission_changes") if getattr(run, name)}
    return {"kind": run.kind, "state": run.state, "seconds": round(seconds, 1),
            "items_per_second": round(items / seconds, 1) if seconds else None, "counts": counts,
            "errors": run.errors_total, "details": {k: v for k, v in run.details.items() if k != "invisible_because"}}


if __name__ == "__main__":
    main()
