"""Latency of the Teams bot on the demo corpus: an authenticated activity sent → the answer card received.

    python benchmarks/teams_latency.py [--rounds 2] [--server gunicorn|runserver] [--cache-ttl 0]

Builds a throwaway deployment (fresh CITEWISE_VAR_DIR, migrate, `manage.py load_demo --no-admin`, demo user
alice linked to a Teams AAD identity), starts the server on a free 127.0.0.1 port with the Teams settings
pointing at the local stand-ins of tests/bot (in this process): Bot Framework OpenID metadata + JWKS + token
endpoint, and a Bot Connector service as the serviceUrl. Every question of
connectors/demo/questions/{answerable,unanswerable}.jsonl is sent as a personal-chat message activity with a
freshly signed Bot Framework JWT, one at a time, `--rounds` times. Latency is from just before the activity is
sent to the moment the connector stand-in receives the reply carrying the Adaptive Card (both on this process's
monotonic clock); the typing indicator's latency is recorded too. No broker: Celery runs the answer task
eagerly in the web process, so this is the whole path (JWT validation, member lookup, retrieval, composition,
rendering, the connector calls with their bearer token) without queueing delay. Writes
benchmarks/results/teams-latency.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ask_latency import (  # noqa: E402
    chat_bot_summary,
    load,
    replay,
    start_demo_deployment,
    stop_server,
    summarize,
)

from tests.standins.teams import BotFrameworkIdentityStandIn, ConnectorStandIn  # noqa: E402

APP_ID = "0b0e5a1c-7d2f-4c59-9a8e-3f1d2c4b5a6e"
APP_PASSWORD = "bench-client-secret"
TENANT = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
USER_ID, AAD = "29:1alice-bench", "a11ce000-0000-4000-8000-0000000000be"
CONVERSATION = "a:1bench-personal-alice"


def activity(identity: BotFrameworkIdentityStandIn, connector: ConnectorStandIn, activity_id: str,
             question: str) -> tuple[bytes, str]:
    body = {"type": "message", "id": activity_id, "channelId": "msteams", "serviceUrl": connector.service_url,
            "from": {"id": USER_ID, "name": "Alice", "aadObjectId": AAD},
            "recipient": {"id": f"28:{APP_ID}", "name": "Citewise"},
            "conversation": {"id": CONVERSATION, "conversationType": "personal", "tenantId": TENANT},
            "channelData": {"tenant": {"id": TENANT}}, "text": question, "textFormat": "plain"}
    return json.dumps(body).encode(), identity.channel_token(service_url=connector.service_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--cache-ttl", type=int, default=0, help="CITEWISE_ANSWER_CACHE_TTL_S (default 0: off)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/teams-latency.json")
    args = parser.parse_args()

    identity = BotFrameworkIdentityStandIn(app_id=APP_ID, app_password=APP_PASSWORD).start()
    connector = ConnectorStandIn(tenant_id=TENANT, accepted_tokens=lambda: identity.issued_tokens).start()
    connector.add_member(CONVERSATION, id=USER_ID, aad_object_id=AAD, name="Alice",
                         email="alice@kestrelrobotics.com")
    var_dir = Path(tempfile.mkdtemp(prefix="citewise-bench-teams-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings.local", "DJANGO_DEBUG": "0",
           # One client asking as fast as it can is what this measures: no rate limits.
           "CITEWISE_ASK_RATE_PER_USER": "0", "CITEWISE_ASK_RATE_PER_CHANNEL": "0",
           "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_INDEX_NAME": f"bench-teams-{var_dir.name[-8:].lower()}",
           "CITEWISE_ANSWER_CACHE_TTL_S": str(args.cache_ttl), "CELERY_BROKER_URL": "",
           "TEAMS_ENABLED": "true", "TEAMS_APP_ID": APP_ID, "TEAMS_APP_PASSWORD": APP_PASSWORD,
           "TEAMS_OPENID_METADATA_URL": identity.openid_metadata_url,
           "TEAMS_EMULATOR_OPENID_METADATA_URL": identity.openid_metadata_url,
           "TEAMS_TOKEN_URL": identity.url + "/{tenant}/oauth2/v2.0/token", "TEAMS_ALLOWED_SERVICE_HOSTS": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sets = {"answerable": load("answerable.jsonl"), "unanswerable": load("unanswerable.jsonl")}
    server = None
    rows: list[dict] = []
    ids = itertools.count(1)
    try:
        demo, server, base, log = start_demo_deployment(env, args.server, f"teams:{TENANT}:user:{AAD}")

        def one(question: str) -> dict[str, float]:
            activity_id = str(next(ids))
            data, token = activity(identity, connector, activity_id, question)
            request = urllib.request.Request(f"{base}/api/teams/messages", data=data, method="POST", headers={
                "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            started = time.monotonic()
            with urllib.request.urlopen(request, timeout=300) as response:
                assert response.status == 200, response.status
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                replies = [c for c in connector.calls_to("reply", ok_only=True) if c.activity_id == activity_id]
                typing = [c for c in replies if (c.body or {}).get("type") == "typing"]
                cards = [c for c in replies if (c.body or {}).get("attachments")]
                if cards:
                    return {"ms": (cards[0].at - started) * 1000,
                            "typing_ms": (typing[0].at - started) * 1000 if typing else float("nan")}
                time.sleep(0.002)
            raise SystemExit(f"no answer card for {question!r}:\n{log.read_text()[-3000:]}")

        rows = replay(sets, args.rounds, args.warmup, one)
    finally:
        stop_server(server)
        connector.stop()
        identity.stop()
        shutil.rmtree(var_dir, ignore_errors=True)

    chat_bot_summary("authenticated Teams message activity → Adaptive Card reply at the connector stand-in, "
                     "sequential", "teams_latency.py", args, demo, sets, rows,
                     typing_indicator=summarize([r["typing_ms"] for r in rows]))

if __name__ == "__main__":
    main()
