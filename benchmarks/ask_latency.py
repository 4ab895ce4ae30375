"""Latency of POST /api/v1/ask on the demo corpus, measured from a client, against a real server.

    python benchmarks/ask_latency.py [--rounds 3] [--server gunicorn|runserver] [--backend embedded]

Builds a throwaway deployment (fresh CITEWISE_VAR_DIR, migrate, `manage.py load_demo --no-admin`, a
linked employee in the engineering and people teams with an API token, so the demo ACLs let it read what
the questions ask about), starts the server on a free 127.0.0.1 port, warms it up, then asks every
question of connectors/demo/questions/{answerable,unanswerable}.jsonl `--rounds` times, one request
at a time, each in a new conversation. Prints a JSON summary (p50/p95/p99/mean of the client-side
wall time: overall, first round vs repeats, per question set; the server's own per-stage medians) and
writes it to benchmarks/results/ask-latency.json. Repeats are faster: the answer pipeline caches
sentence scores in-process, so `first_round` is the figure for questions never asked before. The composer is the
extractive one unless --composer says otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "connectors/demo/questions"
USERNAME = "bench"
# The asker is a linked employee in the engineering and people teams, so the demo ACLs let it read every document
# the questions are about: an unlinked user reads only public documents and has most questions refused.
BENCH_USER = (
    "from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
    "from identity.models import Account, ExternalIdentity, Group, GroupMembership; "
    f"u = get_user_model().objects.create_user({USERNAME!r}, email='{USERNAME}@kestrelrobotics.com'); "
    "Account.objects.create(user=u, status=Account.Status.EMPLOYEE); "
    "ExternalIdentity.objects.create(user=u, principal=f'email:{u.email}'); "
    "[GroupMembership.objects.create(group=Group.objects.get(principal=g), member=f'email:{u.email}') "
    "for g in ('group:engineering', 'group:people-team')]; "
    "print(Token.objects.create(user=u).key)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values_ms: list[float]) -> dict[str, float]:
    return {"n": len(values_ms), "p50_ms": round(percentile(values_ms, 0.50), 1),
            "p95_ms": round(percentile(values_ms, 0.95), 1), "p99_ms": round(percentile(values_ms, 0.99), 1),
            "mean_ms": round(statistics.fmean(values_ms), 1), "min_ms": round(min(values_ms), 1),
            "max_ms": round(max(values_ms), 1)}


def start_demo_deployment(env: dict[str, str], server_kind: str,
                          linked_principal: str) -> tuple[str, subprocess.Popen, str, Path]:
    """Migrate, load the demo corpus, link demo employee alice to `linked_principal` (her chat identity) and
    start the server in env's CITEWISE_VAR_DIR. Returns (load_demo's summary line, server, base URL, log)."""
    manage(env, "migrate", "--no-input", "-v0")
    demo = manage(env, "load_demo", "--no-admin").strip().splitlines()[-1]
    manage(env, "shell", "-c", (
        "from django.contrib.auth import get_user_model; from identity.models import ExternalIdentity; "
        "ExternalIdentity.objects.create(user=get_user_model().objects.get(username='alice'), "
        f"principal={linked_principal!r})"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(env["CITEWISE_VAR_DIR"]) / "server.log"
    server = start_server(server_kind, port, env, log)
    wait_until_up(base, server, log)
    return demo, server, base, log


def machine() -> str:
    return f"{platform.node()} {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


WARMUP_QUESTION = "Warm-up question {i}: who looks after the office plants on weekends?"


def replay(sets: dict[str, list[dict]], rounds: int, warmup: int, one) -> list[dict]:
    """Send `warmup` throwaway questions, then every question of `sets`, `rounds` times, one at a time.

    `one(question)` returns the measurements (a dict with at least "ms") that become the row.
    """
    for i in range(warmup):
        one(WARMUP_QUESTION.format(i=i))
    return [{"round": round_number, "set": name, **one(item["question"])}
            for round_number in range(1, rounds + 1) for name, questions in sets.items() for item in questions]


def chat_bot_summary(benchmark: str, script: str, args: argparse.Namespace, demo: str,
                     sets: dict[str, list[dict]], rows: list[dict], **extra: object) -> dict:
    """The shared summary of the chat-bot latency benchmarks, written to args.output and printed."""
    summary = {
        "benchmark": benchmark,
        "date": datetime.now(tz=UTC).date().isoformat(),
        "machine": machine(),
        "command": " ".join([f"python benchmarks/{script}", *sys.argv[1:]]),
        "server": args.server, "celery": "eager (no broker)", "answer_cache_ttl_s": args.cache_ttl,
        "rounds": args.rounds, "warmup": args.warmup, "demo_corpus": demo,
        "questions": {name: len(questions) for name, questions in sets.items()},
        "overall": summarize([r["ms"] for r in rows]),
        "first_round": summarize([r["ms"] for r in rows if r["round"] == 1]),
        **extra,
        **{name: summarize([r["ms"] for r in rows if r["set"] == name]) for name in sets},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


def stage_medians(rows: list[dict]) -> dict[str, float]:
    stages: dict[str, list[float]] = {}
    for row in rows:
        for stage, ms in row["stages"].items():
            stages.setdefault(stage, []).append(ms)
    return {stage: round(percentile(values, 0.5), 1) for stage, values in stages.items()}


def stop_server(server: subprocess.Popen | None) -> None:
    if server is None:
        return
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()


def start_server(kind: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    if kind == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "console.wsgi:application",
                   "-b", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "300"]
    else:
        command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    sys.exit(f"the server did not come up in {timeout_s}s:\n{log.read_text()[-3000:]}")


def ask(base: str, token: str, question: str) -> tuple[float, dict]:
    request = urllib.request.Request(
        f"{base}/api/v1/ask", data=json.dumps({"question": question}).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:
        body = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, body


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (QUESTIONS / name).read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="times each question is asked (default 3)")
    parser.add_argument("--warmup", type=int, default=5, help="requests before measuring (default 5)")
    parser.add_argument("--server", choices=["gunicorn", "runserver"], default="gunicorn")
    parser.add_argument("--backend", choices=["embedded", "elasticsearch"], default="embedded")
    parser.add_argument("--composer", default="extractive")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ask-latency.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary var directory")
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="citewise-bench-ask-"))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "console.settings.local", "DJANGO_DEBUG": "0",
           # One client asking as fast as it can is what this measures: no rate limits.
           "CITEWISE_ASK_RATE_PER_USER": "0", "CITEWISE_ASK_RATE_PER_CHANNEL": "0",
           "CITEWISE_VAR_DIR": str(var_dir), "CITEWISE_SEARCH_BACKEND": args.backend,
           "CITEWISE_INDEX_NAME": f"bench-ask-{var_dir.name[-8:].lower()}", "CITEWISE_COMPOSER": args.composer,
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sets = {"answerable": load("answerable.jsonl"), "unanswerable": load("unanswerable.jsonl")}
    server = None
    try:
        manage(env, "migrate", "--no-input", "-v0")
        demo = manage(env, "load_demo", "--no-admin").strip().splitlines()[-1]
        token = manage(env, "shell", "-c", BENCH_USER).strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = var_dir / "server.log"
        server = start_server(args.server, port, env, log)
        wait_until_up(base, server, log)

        # Warm-up questions are not in the measured sets, so no measured question starts out cached.
        for i in range(args.warmup):
            ask(base, token, f"Warm-up question {i}: who looks after the office plants on weekends?")

        rows: list[dict] = []
        for round_number in range(1, args.rounds + 1):
            for name, questions in sets.items():
                for item in questions:
                    elapsed_ms, body = ask(base, token, item["question"])
                    expected = item.get("answer_contains", "")
                    rows.append({"round": round_number, "set": name, "wall_ms": elapsed_ms,
                                 "server_ms": body["timings_ms"].get("total", 0.0), "refused": body["refused"],
                                 "expected_found": bool(expected) and expected.lower() in body["answer"].lower(),
                                 "stages": body["timings_ms"]})
    finally:
        stop_server(server)
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)

    summary = {
        "benchmark": "POST /api/v1/ask, sequential, client-side wall time",
        "date": datetime.now(tz=UTC).date().isoformat(),
        "machine": machine(),
        "command": " ".join(["python benchmarks/ask_latency.py", *sys.argv[1:]]),
        "server": args.server, "backend": args.backend, "composer": args.composer, "rounds": args.rounds,
        "warmup_requests": args.warmup, "demo_corpus": demo,
        "questions": {name: len(questions) for name, questions in sets.items()},
        "overall": summarize([r["wall_ms"] for r in rows]),
        # The first time each question is asked, versus again: the answer pipeline keeps an in-process cache
        # of sentence scores per (question, passages), so a repeated question skips most of the work.
        "first_round": summarize([r["wall_ms"] for r in rows if r["round"] == 1]),
        "repeat_rounds": summarize([r["wall_ms"] for r in rows if r["round"] > 1]) if args.rounds > 1 else None,
        **{name: {**summarize([r["wall_ms"] for r in rows if r["set"] == name]),
                  "answered": sum(1 for r in rows if r["set"] == name and not r["refused"]),
                  "refused": sum(1 for r in rows if r["set"] == name and r["refused"]),
                  "expected_text_found": sum(1 for r in rows if r["set"] == name and r["expected_found"])}
           for name in sets},
        "server_total": summarize([r["server_ms"] for r in rows]),
        "server_stage_p50_ms": {
            "first_round": stage_medians([r for r in rows if r["round"] == 1]),
            "repeat_rounds": stage_medians([r for r in rows if r["round"] > 1]),
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
