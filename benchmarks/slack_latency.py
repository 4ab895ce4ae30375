"""Latency of the Slack bot on the demo corpus: a signed event sent → the answer's chat.postMessage received.

    python benchmarks/slack_latency.py [--rounds 2] [--server gunicorn|runserver] [--cache-ttl 0]

Builds a throwaway deployment (fresh CITEWISE_VAR_DIR, migrate, `manage.py load_demo --no-admin`, demo user
alice linked to a Slack user), starts the server on a free 127.0.0.1 port with SLACK_API_BASE_URL pointing at
the local Slack Web API stand-in of tests/bot (in this process), then sends every question of
connectors/demo/questions/{answerable,unanswerable}.jsonl as a signed `message.im` event, one at a time,
`--rounds` times. The latency is from just before the event is sent to the moment the stand-in receives the
answer's chat.postMessage (both on this process's monotonic clock). No broker: Celery runs the answer task
eagerly in the web process, so this is the whole path (verification, identity, retrieval, composition,
rendering, the Web API call) without queueing delay. The answer cache is off unless --cache-ttl says otherwise.
Writes benchmarks/results/slack-latency.json.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
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
)

from tests.standins.slack import SlackStandIn  # noqa: E402

SECRET = "bench-signing-secret"
TEAM, USER = "TBENCH", "UALICE"


def send(base: str, event_id: str, question: str, ts: str) -> float:
    body = json.dumps({"type": "event_callback", "team_id": TEAM, "api_app_id": "A1", "event_id": event_id,
                       "event_time": int(time.time()),
                       "event": {"type": "message", "channel_type": "im", "channel": "DBENCH", "user": USER,
                                 "text": question, "ts": ts, "event_ts": ts}})
    stamp = str(int(time.time()))
    signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(f"{base}/slack/events", data=body.encode(), method="POST", headers={
        "Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=300) as response:
        assert response.status == 200, response.status
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--cache-ttl", type=int, default=0, help="CITEWISE_ANSWER_CACHE_TTL_S (default 0: off)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/slack-latency.json")
    args = parser.parse_args()

    standin = SlackStandIn(team_id=TEAM).start()
    var_dir = Path(tempfile.mkdtemp(prefix="citewise-bench-slack-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings.local", "DJANGO_DEBUG": "0",
           # One client asking as fast as it can is what this measures: no rate limits.
           "CITEWISE_ASK_RATE_PER_USER": "0", "CITEWISE_ASK_RATE_PER_CHANNEL": "0",
           "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_INDEX_NAME": f"bench-slack-{var_dir.name[-8:].lower()}",
           "CITEWISE_ANSWER_CACHE_TTL_S": str(args.cache_ttl), "CELERY_BROKER_URL": "",
           "SLACK_SIGNING_SECRET": SECRET, "SLACK_BOT_TOKEN": "xoxb-bench", "SLACK_API_BASE_URL": standin.base_url,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sets = {"answerable": load("answerable.jsonl"), "unanswerable": load("unanswerable.jsonl")}
    server = None
    rows: list[dict] = []
    try:
        demo, server, base, log = start_demo_deployment(env, args.server, f"slack:{TEAM}:user:{USER}")
        counter = 0

        def one(question: str) -> float:
            nonlocal counter
            counter += 1
            seen = len(standin.calls)
            started = send(base, f"EvBench{counter:05d}", question, f"{1000 + counter}.000100")
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                posts = [c for c in standin.calls[seen:]
                         if c["method"] == "chat.postMessage" and c["status"] == 200]
                if posts:
                    return (posts[0]["at"] - started) * 1000
                time.sleep(0.002)
            raise SystemExit(f"no chat.postMessage for {question!r}:\n{log.read_text()[-3000:]}")

        rows = replay(sets, args.rounds, args.warmup, lambda question: {"ms": one(question)})
    finally:
        stop_server(server)
        standin.stop()
        shutil.rmtree(var_dir, ignore_errors=True)

    chat_bot_summary("signed Slack message.im event → answer chat.postMessage at the Web API stand-in, sequential",
                     "slack_latency.py", args, demo, sets, rows)

if __name__ == "__main__":
    main()
