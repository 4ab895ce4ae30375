"""Load test of POST /api/v1/ask: the production stack on loopback, stepped concurrency, what saturates.

    python benchmarks/load.py [--users 1,2,4,8,16] [--step-seconds 40] [--cached-users 8]

On this machine only (every address is 127.0.0.1), bounded in time (each step runs --step-seconds), and it cleans up
after itself even when it fails:

1. a fresh PostgreSQL database on the cluster at --postgres (migrated), a fresh Elasticsearch index
   (CITEWISE_INDEX_NAME) and an empty Redis database for the cache (CITEWISE_CACHE_URL): docker-compose.yml's
   production stack, on loopback;
2. `manage.py load_demo` (the demo corpus with its ACLs) and the seven people of evaluation/people.yaml as users,
   each with a DRF API token, so every question is answered under its asker's permissions;
3. gunicorn with console/gunicorn.py (gthread; WEB_CONCURRENCY x GUNICORN_THREADS, 2 x 8 unless --workers/--threads
   say otherwise) and console.settings.production, with a secret key and a Fernet key generated for the run,
   DJANGO_SSL_REDIRECT=false (no TLS proxy on loopback) and the rate limits *raised* to 1,000,000 questions a minute
   (not switched off: the per-user and per-channel counters are still kept in Redis on every request, as in
   production, but never refuse one);
4. the question mix: every question of evaluation/questions.jsonl (as its asker; a follow-up in its conversation)
   and of connectors/demo/questions (asked by the seven people in turn), each in five wordings: as written,
   informal (lower case, no punctuation), with a transposed-letter typo, with a dropped letter, and with a chatty
   opener. The (conversation, wording) pairs are shuffled once and handed out without replacement across all the
   steps, so no question string is asked twice in a run and no in-process cache of a worker helps;
5. with the answer cache off (CITEWISE_ANSWER_CACHE_TTL_S=0), one locust run per concurrency step: N users, each
   asking its next conversation as soon as the last answer arrives (no think time); the first --settle-seconds of a
   step are not counted. Per step: answers/s, p50/p95/p99 latency (client side), error rate, refusals, the server's
   stage medians, and the CPU used by the gunicorn processes, the Elasticsearch JVM, PostgreSQL, Redis and the load
   generator (psutil, from cumulative CPU times, so short-lived PostgreSQL backends count too) against the machine's;
6. with --cached-users N, one more step with the answer cache on (300 s, in Redis): gunicorn restarted, the
   questions as written drawn *with* replacement, so repeats happen as they would for popular questions;
7. the highest step whose p95 stays under 1 s is the throughput quoted; JSON into --output, and a PNG plot beside it.

Elasticsearch, Redis and PostgreSQL are shared services: what else runs on the machine uses them too, and the
"other" CPU column is everything not listed. Run it under `flock /tmp/citewise-bench.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(__file__).resolve().parent / "load_locustfile.py"
EVALUATION_QUESTIONS = ROOT / "evaluation/questions.jsonl"
PEOPLE = ROOT / "evaluation/people.yaml"
DEMO_QUESTIONS = ROOT / "connectors/demo/questions"
# Raised, not off: the throttle's counters still cost their Redis round trips on every request.
RAISED_RATE = "1000000/m"
P95_TARGET_MS = 1000.0
WARMUP_QUESTIONS = [
    "Who looks after the office plants on weekends?", "how do i book a meeting room", "What is the wifi password?",
    "where do i find the expense policy", "Is there parking at the office?", "what time does the canteen open",
]
CPU_GROUPS = ["web", "elasticsearch", "postgres", "redis", "load generator"]


# -- the question mix ------------------------------------------------------------------------------------------

def _inner_position(text: str, rng: random.Random, shortest: int, room: int) -> int | None:
    """A random position inside a random word of at least `shortest` letters, never its first letter nor one of its
    last `room`; None when the text has no such word."""
    words = list(re.finditer(rf"[A-Za-z]{{{shortest},}}", text))
    if not words:
        return None
    word = rng.choice(words)
    return rng.randrange(word.start() + 1, word.end() - room)


def _transpose(text: str, rng: random.Random) -> str:
    """Swap two neighbouring letters inside one longer word (a typing slip)."""
    i = _inner_position(text, rng, 5, 2)
    return text if i is None else text[:i] + text[i + 1] + text[i] + text[i + 2:]


def _drop_letter(text: str, rng: random.Random) -> str:
    i = _inner_position(text, rng, 6, 1)
    return text if i is None else text[:i] + text[i + 1:]


def _informal(text: str) -> str:
    return re.sub(r"[?!.,;:]+", "", text.lower()).strip()


OPENERS = ["hey, ", "quick q: ", "hi! ", "sorry if this was asked before, ", "does anyone know "]
VARIANTS = ["as written", "informal", "transposed letters", "dropped letter", "chatty opener"]


def reworded(text: str, variant: str, rng: random.Random) -> str:
    if variant == "informal":
        return _informal(text)
    if variant == "transposed letters":
        return _transpose(text, rng)
    if variant == "dropped letter":
        return _drop_letter(text, rng).lower()
    if variant == "chatty opener":
        return rng.choice(OPENERS) + text[:1].lower() + text[1:]
    return text


def base_conversations(people: list[str]) -> list[dict[str, Any]]:
    """The evaluation set's questions (a follow-up joins the conversation of the question it follows, asked by the
    same person) and the demo question sets (asked by the people in turn); each a list of turns."""
    conversations: list[dict[str, Any]] = []
    by_question: dict[str, dict[str, Any]] = {}
    for line in EVALUATION_QUESTIONS.read_text().splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        turn = {"question": item["question"], "kind": item["kind"]}
        parent = by_question.get(item.get("follows") or "")
        if parent is not None:
            parent["turns"].append(turn)
            by_question[item["id"]] = parent
            continue
        conversation = {"asker": item["asker"], "source": "evaluation", "turns": [turn]}
        conversations.append(conversation)
        by_question[item["id"]] = conversation
    asked = 0
    for name in ("answerable", "unanswerable"):
        for line in (DEMO_QUESTIONS / f"{name}.jsonl").read_text().splitlines():
            if line.strip():
                conversations.append({"asker": people[asked % len(people)], "source": "demo",
                                      "turns": [{"question": json.loads(line)["question"], "kind": f"demo {name}"}]})
                asked += 1
    return conversations


def question_pool(people: list[str], seed: int) -> list[dict[str, Any]]:
    """Every conversation in every wording, shuffled once."""
    rng = random.Random(seed)
    pool = [{**conversation, "variant": variant,
             "turns": [{**turn, "question": reworded(turn["question"], variant, rng)} for turn in conversation["turns"]]}
            for conversation in base_conversations(people) for variant in VARIANTS]
    rng.shuffle(pool)
    return pool


def read_people() -> list[dict[str, Any]]:
    import yaml

    return [{"id": p["id"], "email": p["email"], "external": bool(p.get("external", False))}
            for p in yaml.safe_load(PEOPLE.read_text())]


# -- statistics ---------------------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def step_figures(rows: list[dict[str, Any]], window: tuple[float, float]) -> dict[str, Any]:
    """The figures of one step from the requests that finished inside its measured window."""
    start, end = window
    counted = [r for r in rows if start <= r["end"] <= end]
    seconds = end - start
    latencies = [r["ms"] for r in counted]
    errors = [r for r in counted if "error" in r]
    answered = [r for r in counted if "error" not in r]
    stages: dict[str, list[float]] = {}
    for row in answered:
        for stage, ms in (row.get("timings") or {}).items():
            if isinstance(ms, int | float):
                stages.setdefault(stage, []).append(float(ms))
    hits = [r for r in answered if "cache_lookup" in r["timings"] and "retrieve" not in r["timings"]]
    error_kinds: dict[str, int] = {}
    for row in errors:
        error_kinds[row["error"]] = error_kinds.get(row["error"], 0) + 1
    return {
        "window_s": round(seconds, 2),
        "requests": len(counted),
        "answers_per_s": round(len(answered) / seconds, 2) if seconds > 0 else 0.0,
        "requests_per_s": round(len(counted) / seconds, 2) if seconds > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50), 1), "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1), "max_ms": round(max(latencies), 1) if latencies else None,
        "mean_ms": round(sum(latencies) / len(latencies), 1) if latencies else None,
        "errors": len(errors), "error_rate": round(len(errors) / len(counted), 4) if counted else None,
        "error_kinds": error_kinds,
        "refused_share": round(sum(1 for r in answered if r["refused"]) / len(answered), 3) if answered else None,
        "server_stage_p50_ms": {stage: round(percentile(values, 0.5), 1) for stage, values in sorted(stages.items())},
        "cache_hits": len(hits),
        "cache_hit_p50_ms": round(percentile([r["ms"] for r in hits], 0.5), 1) if hits else None,
        "cache_miss_p50_ms": (round(percentile([r["ms"] for r in answered if r not in hits], 0.5), 1)
                              if hits else None),
    }


# -- CPU accounting ------------------------------------------------------------------------------------------

@dataclass
class Processes:
    """The processes whose CPU is reported, by group; the load generator's pid changes with each step."""
    web: int | None = None
    elasticsearch: int | None = None
    postmaster: int | None = None
    redis: int | None = None
    load_generator: int | None = None


def _cpu_seconds(process: Any, *, reaped: bool = False) -> float:
    times = process.cpu_times()
    total = times.user + times.system
    if reaped:
        total += times.children_user + times.children_system
    return total


def find_service_processes(postgres_port: int, redis_port: int) -> Processes:
    """The Elasticsearch JVM, the PostgreSQL postmaster on `postgres_port` and the redis-server on `redis_port`."""
    import psutil

    found = Processes()
    for process in psutil.process_iter(["name", "cmdline", "ppid"]):
        try:
            name, cmdline = process.info["name"] or "", " ".join(process.info["cmdline"] or [])
            if name == "java" and "org.elasticsearch" in cmdline:
                found.elasticsearch = process.pid
            elif name == "redis-server" and f":{redis_port}" in cmdline:
                found.redis = process.pid
            elif name in ("postgres", "postmaster") and psutil.Process(process.info["ppid"]).name() not in (
                    "postgres", "postmaster"):
                ports = {c.laddr.port for c in process.net_connections(kind="tcp") if c.status == "LISTEN"}
                if postgres_port in ports or found.postmaster is None:
                    found.postmaster = process.pid
        except (psutil.Error, OSError):
            continue
    return found


def cpu_snapshot(processes: Processes) -> dict[str, float]:
    """Cumulative CPU seconds per group, and the machine's busy seconds. A group's processes that exited since the
    last snapshot were reaped by its parent (gunicorn's arbiter, the postmaster, this script), whose children's
    times then hold them, so the difference of two snapshots is exact even for one-request PostgreSQL backends."""
    import psutil

    snapshot: dict[str, float] = {}

    def tree(pid: int | None, *, reaped: bool) -> float:
        if pid is None:
            return 0.0
        try:
            parent = psutil.Process(pid)
            total = _cpu_seconds(parent, reaped=reaped)
            for child in parent.children(recursive=True):
                try:
                    total += _cpu_seconds(child)
                except psutil.Error:
                    continue
            return total
        except psutil.Error:
            return 0.0

    snapshot["web"] = tree(processes.web, reaped=True)
    # Each gunicorn worker on its own: whether the requests spread over the workers (a worker's threads share
    # one GIL, so one busy worker cannot use more than about one core for Python work).
    if processes.web is not None:
        try:
            for worker in psutil.Process(processes.web).children():
                snapshot[f"web worker {worker.pid}"] = _cpu_seconds(worker)
        except psutil.Error:
            pass
    snapshot["elasticsearch"] = tree(processes.elasticsearch, reaped=False)
    snapshot["postgres"] = tree(processes.postmaster, reaped=True)
    snapshot["redis"] = tree(processes.redis, reaped=False)
    # This script (the sampler included) and its finished children (locust steps, manage.py), plus the running step.
    snapshot["load generator"] = _cpu_seconds(psutil.Process(), reaped=True) + tree(processes.load_generator,
                                                                                      reaped=True)
    machine = psutil.cpu_times()
    snapshot["machine"] = (machine.user + machine.nice + machine.system + getattr(machine, "irq", 0.0)
                           + getattr(machine, "softirq", 0.0) + getattr(machine, "steal", 0.0))
    return snapshot


class CpuSampler(threading.Thread):
    """A cumulative CPU snapshot every `interval_s`; figures come from the two nearest a window's edges."""

    def __init__(self, processes: Processes, interval_s: float = 1.0) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        self.processes, self.interval_s = processes, interval_s
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.time(), cpu_snapshot(self.processes)))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def percent(self, window: tuple[float, float]) -> dict[str, Any]:
        """CPU used per group over the window, in % of one core (the machine has os.cpu_count() x 100 %)."""
        inside = [s for s in self.samples if window[0] <= s[0] <= window[1]]
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        used = {group: round(100 * (last[group] - first[group]) / (t1 - t0), 1) for group in first if group in last}
        used["other"] = round(max(0.0, used["machine"] - sum(used[g] for g in CPU_GROUPS)), 1)
        workers = sorted((used.pop(key) for key in [k for k in used if k.startswith("web worker ")]), reverse=True)
        if workers:
            used["web workers"] = workers  # type: ignore[assignment]
        return used


def memory_mib(processes: Processes) -> dict[str, Any]:
    """Resident memory of the web processes (each gunicorn worker holds its own embedding model) and services."""
    import psutil

    def rss(pid: int | None) -> float | None:
        try:
            return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid else None
        except psutil.Error:
            return None

    workers: list[float] = []
    if processes.web:
        try:
            workers = [round(child.memory_info().rss / 2**20, 1) for child in psutil.Process(processes.web).children()]
        except psutil.Error:
            workers = []
    return {"gunicorn_arbiter": rss(processes.web), "gunicorn_workers": workers,
            "elasticsearch_jvm": rss(processes.elasticsearch), "redis": rss(processes.redis)}


# -- the deployment ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine() -> str:
    import psutil

    return (f"{platform.node()}: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
            f"{platform.machine()}, Python {platform.python_version()}")


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip()


def manage(env: dict[str, str], *args: str, timeout_s: float = 1800) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=timeout_s)
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


MAKE_PEOPLE = """
import json
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from identity import services as identity_services
from identity.models import Account, ExternalIdentity
tokens = {}
for person in json.loads(PEOPLE):
    user, _ = get_user_model().objects.get_or_create(username=person["id"], defaults={"email": person["email"]})
    ExternalIdentity.objects.update_or_create(principal="email:" + person["email"].lower(),
                                              defaults={"user": user, "is_external": person["external"]})
    identity_services.set_account_status(
        user, Account.Status.GUEST if person["external"] else Account.Status.EMPLOYEE, surface="cli")
    tokens[person["id"]] = Token.objects.get_or_create(user=user)[0].key
print(json.dumps(tokens))
"""


def make_people(env: dict[str, str], people: list[dict[str, Any]]) -> dict[str, str]:
    """A user per person of evaluation/people.yaml (load_demo made four of them), with the email identity that the
    demo corpus's ACL manifest names in its groups, and an API token each."""
    script = f"PEOPLE = {json.dumps(json.dumps(people))}\n{MAKE_PEOPLE}"
    return json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A fresh database on the cluster (as tests/conftest.py's postgres_database makes one), dropped afterwards."""
    import dj_database_url
    import psycopg

    server = dj_database_url.parse(url)
    conninfo = {"host": server["HOST"], "port": server["PORT"] or 5432, "user": server["USER"],
                "password": server["PASSWORD"] or None, "dbname": server["NAME"], "connect_timeout": 5}
    name = f"citewise_load_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        password = f":{server['PASSWORD']}" if server["PASSWORD"] else ""
        yield f"postgres://{server['USER']}{password}@{conninfo['host']}:{conninfo['port']}/{name}"
    finally:
        with psycopg.connect(**conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_database(host: str, port: int) -> Iterator[int]:
    """An empty Redis database (the highest-numbered free one); our keys in it are deleted afterwards."""
    import redis

    for db in range(15, 1, -1):
        client = redis.Redis(host=host, port=port, db=db)
        if client.dbsize() == 0:
            break
    else:
        raise RuntimeError(f"no empty Redis database on {host}:{port}")
    try:
        yield db
    finally:
        keys = list(client.scan_iter(match="citewise:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])


@contextmanager
def elasticsearch_index(url: str, name: str) -> Iterator[str]:
    """The run's index name; the index (every version behind its alias) is dropped afterwards."""
    sys.path.insert(0, str(ROOT))
    from search.backends.elastic import ElasticsearchBackend

    try:
        yield name
    finally:
        ElasticsearchBackend(url, name).drop()


@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log: Path
    env: dict[str, str] = field(repr=False)


def start_gunicorn(env: dict[str, str], log: Path) -> Server:
    port = free_port()
    env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn", "console.wsgi:application"],
        cwd=ROOT, env=env, stdout=log.open("a"), stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log, env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.base}/healthz", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    stop_gunicorn(server)
    raise RuntimeError(f"gunicorn did not come up in 180 s:\n{log.read_text()[-3000:]}")


def stop_gunicorn(server: Server | None) -> None:
    if server is None or server.process.poll() is not None:
        return
    server.process.terminate()  # SIGTERM: a graceful stop; the steps are over, so nothing is in flight
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


def warm_up(server: Server, tokens: dict[str, str], concurrency: int, rounds: int = 3) -> None:
    """Rounds of `concurrency` questions at once, each round waited out, so every worker has loaded its models
    (the embedding model, the spelling vocabulary) before anything is measured, however long that takes on a busy
    machine."""
    from concurrent.futures import ThreadPoolExecutor

    token = next(iter(tokens.values()))

    def ask(question: str) -> int:
        request = urllib.request.Request(
            f"{server.base}/api/v1/ask", data=json.dumps({"question": question}).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"})
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status

    with ThreadPoolExecutor(concurrency) as pool:
        for round_number in range(rounds):
            questions = [WARMUP_QUESTIONS[(round_number + i) % len(WARMUP_QUESTIONS)] for i in range(concurrency)]
            statuses = list(pool.map(ask, questions))
            if any(status != 200 for status in statuses):
                raise RuntimeError(f"warm-up questions failed: {statuses}")


# -- one step ---------------------------------------------------------------------------------------------------

def run_step(server: Server, plan: dict[str, Any], users: int, seconds: int, scratch: Path,
             processes: Processes, label: str) -> dict[str, Any]:
    """One locust run of `users` users for `seconds`; returns its rows and the marks of its start and stop."""
    plan_file, rows_file = scratch / f"plan-{label}.json", scratch / f"rows-{label}.json"
    plan_file.write_text(json.dumps({**plan, "rows": str(rows_file)}))
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", server.base,
               "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s", "--stop-timeout", "0",
               "--only-summary", "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    log = scratch / f"locust-{label}.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "CITEWISE_LOAD_PLAN": str(plan_file)},
                                   stdout=output, stderr=subprocess.STDOUT)
        processes.load_generator = process.pid
        try:
            returncode = process.wait(timeout=seconds + 120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            processes.load_generator = None
    if returncode or not rows_file.exists():
        raise RuntimeError(f"locust ({label}) exited with {returncode}:\n{log.read_text()[-3000:]}")
    return json.loads(rows_file.read_text())


# -- the report ---------------------------------------------------------------------------------------------------

def saturation(steps: list[dict[str, Any]], cores: int, concurrency: int) -> dict[str, Any]:
    """Where the throughput stopped growing, and what was busy there."""
    knee = None
    for previous, current in pairwise(steps):
        if current["answers_per_s"] < previous["answers_per_s"] * 1.10:
            knee = previous["users"]
            break
    top = max(steps, key=lambda s: s["answers_per_s"])
    cpu = top.get("cpu_percent") or {}
    capacity = cores * 100
    ours = sorted(((cpu.get(g, 0.0), g) for g in CPU_GROUPS[:4]), reverse=True)
    machine_busy = cpu.get("machine", 0.0)
    shares = ", ".join(f"{group} {percent:.0f} %" for percent, group in ours)
    if machine_busy >= 0.85 * capacity:
        verdict = (f"CPU: the machine's {cores} cores were {machine_busy:.0f} % busy of {capacity} % at the best "
                   f"step ({top['users']} users): {shares}, the load generator {cpu.get('load generator', 0):.0f} %, "
                   f"everything else on the machine {cpu.get('other', 0):.0f} %")
    elif top["users"] > concurrency:
        verdict = (f"gunicorn's {concurrency} request threads: more users than threads queue in the workers while "
                   f"the CPU is {machine_busy:.0f} % of {capacity} % busy")
    else:
        verdict = (f"not the CPU ({machine_busy:.0f} % of {capacity} % busy at the best step): the GIL of each "
                   "gunicorn worker, or waiting on a service")
    per_answer = top.get("cpu_ms_per_answer") or {}
    deployment_ms = sum(per_answer.get(group, 0.0) for group in CPU_GROUPS[:4])
    return {"throughput_stops_growing_after_users": knee, "best_step_users": top["users"],
            # If this deployment had the cores to itself and the CPU stayed the limit: cores / CPU per answer.
            "cpu_ms_per_answer_at_best_step": per_answer,
            "answers_per_s_if_the_cores_were_the_deployments_alone": (
                round(capacity * 10 / deployment_ms, 1) if deployment_ms else None),
            "best_answers_per_s": top["answers_per_s"], "verdict": verdict,
            "cpu_at_best_step_percent_of_one_core": cpu}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    users = [s["users"] for s in steps]
    positions = list(range(len(users)))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.plot(positions, [s["answers_per_s"] for s in steps], "o-", color="tab:blue", label="answers/s")
    top.set_ylabel("answers/s", color="tab:blue")
    top.set_ylim(bottom=0)
    latency = top.twinx()
    latency.plot(positions, [s["p95_ms"] for s in steps], "s--", color="tab:red", label="p95")
    latency.plot(positions, [s["p50_ms"] for s in steps], "^:", color="tab:orange", label="p50")
    latency.axhline(P95_TARGET_MS, color="tab:red", linewidth=0.8, alpha=0.5)
    latency.set_ylabel("latency, ms (line: p95 target 1 s)", color="tab:red")
    latency.set_ylim(bottom=0)
    latency.legend(loc="upper left")
    top.set_title(f"POST /api/v1/ask, {result['deployment']['backend']} backend, gunicorn "
                  f"{result['deployment']['workers']}x{result['deployment']['threads']}, answer cache off")
    bottom_offsets = [0.0] * len(steps)
    for group, colour in zip([*CPU_GROUPS, "other"], ["tab:blue", "tab:green", "tab:purple", "tab:red", "tab:gray",
                                                    "lightgray"], strict=True):
        values = [(s.get("cpu_percent") or {}).get(group, 0.0) for s in steps]
        bottom.bar(positions, values, bottom=bottom_offsets, color=colour, label=group)
        bottom_offsets = [a + b for a, b in zip(bottom_offsets, values, strict=True)]
    bottom.axhline(100 * (os.cpu_count() or 1), color="black", linewidth=0.8)
    bottom.set_ylabel("CPU, % of one core")
    bottom.set_xlabel("concurrent users (no think time)")
    bottom.set_xticks(positions, [str(u) for u in users])
    bottom.legend(fontsize="small", ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main ---------------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join((__doc__ or "").splitlines()[2:]))
    parser.add_argument("--users", default="1,2,4,8,16",
                        help="the concurrency steps, comma-separated (default 1,2,4,8,16)")
    parser.add_argument("--step-seconds", type=int, default=40, help="how long each step runs (default 40)")
    parser.add_argument("--settle-seconds", type=int, default=5,
                        help="the start of each step that is not counted (default 5)")
    parser.add_argument("--warmup-seconds", type=int, default=15,
                        help="unmeasured locust warm-up at 4 users before the steps, after every gunicorn worker "
                             "has answered (default 15)")
    parser.add_argument("--cached-users", type=int, default=0,
                        help="also run one step at this many users with the answer cache on (default 0: not run)")
    parser.add_argument("--backend", choices=["elasticsearch", "embedded"], default="elasticsearch")
    parser.add_argument("--workers", type=int, help="WEB_CONCURRENCY (default: console/gunicorn.py's, 2)")
    parser.add_argument("--threads", type=int, help="GUNICORN_THREADS (default: console/gunicorn.py's, 8)")
    parser.add_argument("--conn-max-age", type=int, help="DATABASE_CONN_MAX_AGE (default: unset, i.e. 0)")
    parser.add_argument("--postgres", default="postgres://citewise@127.0.0.1:5433/citewise",
                        help="a database on the cluster to connect to while creating the run's own")
    parser.add_argument("--elasticsearch", default="http://127.0.0.1:9200")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch folder (gunicorn's log, locust's logs and every request's row)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/load-ask.json",
                        help="the JSON results; the plot is written beside it as .png")
    args = parser.parse_args(argv)
    args.user_steps = [int(u) for u in args.users.split(",") if u.strip()]
    if not args.user_steps or min(args.user_steps) < 1:
        parser.error("--users needs one or more positive numbers")
    if args.step_seconds <= args.settle_seconds:
        parser.error("--step-seconds must be longer than --settle-seconds")
    return args


def _raise_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so the cleanup below runs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    from cryptography.fernet import Fernet

    cores = os.cpu_count() or 1
    people = read_people()
    pool = question_pool([p["id"] for p in people], args.seed)
    redis_host, redis_port = args.redis.rsplit(":", 1)
    token = uuid.uuid4().hex[:10]
    scratch = Path(tempfile.mkdtemp(prefix="citewise-load-"))
    server: Server | None = None
    sampler: CpuSampler | None = None
    result: dict[str, Any] = {
        "benchmark": "POST /api/v1/ask under load: gunicorn (console/gunicorn.py), production settings, loopback",
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"), "machine": machine(), "commit": git_commit(),
        "command": " ".join(["python benchmarks/load.py", *(sys.argv[1:] if argv is None else argv)]),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    print(f"[load] scratch {scratch}; {len(pool)} conversations in the pool", flush=True)
    try:
        with ExitStack() as stack:
            database_url = stack.enter_context(postgres_database(args.postgres))
            redis_db = stack.enter_context(redis_database(redis_host, int(redis_port)))
            index_name = f"load-ask-{token}"
            if args.backend == "elasticsearch":
                stack.enter_context(elasticsearch_index(args.elasticsearch, index_name))
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "console.settings.production",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
                "CITEWISE_ENCRYPTION_KEY": Fernet.generate_key().decode(),
                "DATABASE_URL": database_url,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_SSL_REDIRECT": "false",
                "TEAMS_ENABLED": "false",
                "CITEWISE_LOG_FORMAT": "json",
                "CITEWISE_VAR_DIR": str(scratch / "var"),
                "CITEWISE_SEARCH_BACKEND": args.backend,
                "CITEWISE_INDEX_NAME": index_name,
                "ELASTICSEARCH_URL": args.elasticsearch,
                "CITEWISE_CACHE_URL": f"redis://{redis_host}:{redis_port}/{redis_db}",
                "CITEWISE_ANSWER_CACHE_TTL_S": "0",
                "CITEWISE_ASK_RATE_PER_USER": RAISED_RATE, "CITEWISE_ASK_RATE_PER_CHANNEL": RAISED_RATE,
                "CITEWISE_SEARCH_RATE_PER_USER": RAISED_RATE,
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            }
            for name, value in (("WEB_CONCURRENCY", args.workers), ("GUNICORN_THREADS", args.threads),
                                ("DATABASE_CONN_MAX_AGE", args.conn_max_age)):
                env.pop(name, None)
                if value is not None:
                    env[name] = str(value)
            (scratch / "var").mkdir()

            started = time.monotonic()
            manage(env, "migrate", "--no-input", "-v0")
            migrated = time.monotonic()
            corpus = manage(env, "load_demo", "--no-admin").strip().splitlines()
            loaded = time.monotonic()
            tokens = make_people(env, people)
            print(f"[load] {corpus[-2] if len(corpus) > 1 else corpus[-1]}", flush=True)

            sys.path.insert(0, str(ROOT))
            import console.gunicorn as gunicorn_defaults

            workers = args.workers or gunicorn_defaults.workers
            threads = args.threads or gunicorn_defaults.threads
            result["deployment"] = {
                "settings": "console.settings.production", "gunicorn": "console/gunicorn.py (gthread)",
                "workers": workers, "threads": threads, "backend": args.backend, "index": index_name,
                "database": "PostgreSQL 127.0.0.1 (fresh database)", "cache": f"Redis db {redis_db}",
                "answer_cache_ttl_s": 0, "rate_limits": f"raised to {RAISED_RATE} per user and per channel",
                "database_conn_max_age": args.conn_max_age or 0,
                "setup_s": {"migrate": round(migrated - started, 1), "load_demo": round(loaded - migrated, 1)},
                "demo_corpus": [line for line in corpus if line.startswith("Demo corpus")],
            }
            if args.backend == "elasticsearch":
                result["deployment"]["index_stats"] = index_stats(args.elasticsearch, index_name)
            result["question_pool"] = {
                "conversations": len(pool), "turns": sum(len(c["turns"]) for c in pool),
                "wordings": VARIANTS, "askers": sorted(tokens),
                "sources": {s: sum(1 for c in pool if c["source"] == s) for s in ("evaluation", "demo")},
            }

            processes = find_service_processes(int(args.postgres.rsplit(":", 1)[-1].split("/")[0]), int(redis_port))
            # Unwound first (an ExitStack runs its callbacks last in, first out): the server and the sampler stop
            # before the database, the index and the cache they use are dropped.
            stack.callback(lambda: stop_gunicorn(server))
            stack.callback(lambda: sampler.stop() if sampler is not None else None)
            server = start_gunicorn(env, scratch / "gunicorn.log")
            processes.web = server.process.pid
            sampler = CpuSampler(processes)
            sampler.start()

            warmup = {"tokens": tokens, "mode": "repeat", "seed": args.seed, "offset": 0,
                      "conversations": [{"asker": people[i % len(people)]["id"], "variant": "warm-up",
                                         "turns": [{"question": q, "kind": "warm-up"}]}
                                        for i, q in enumerate(WARMUP_QUESTIONS)]}
            warm_up(server, tokens, workers * 2)
            if args.warmup_seconds > 0:
                run_step(server, warmup, 4, args.warmup_seconds, scratch, processes, "warmup")

            offset = 0
            result["steps"] = []
            for users in args.user_steps:
                plan = {"tokens": tokens, "mode": "unique", "seed": args.seed, "offset": offset,
                        "conversations": pool}
                figures = measured_step(server, plan, users, args, scratch, processes, sampler, f"u{users}")
                offset = figures.pop("next_offset")
                result["steps"].append(figures)
                print(f"[load] {users:>3} users: {figures['answers_per_s']:6.2f} answers/s, p50 {figures['p50_ms']}"
                      f" ms, p95 {figures['p95_ms']} ms, errors {figures['errors']}, cpu {figures['cpu_percent']}",
                      flush=True)
            result["conversations_asked"] = offset
            result["memory_mib_after_steps"] = memory_mib(processes)
            under = [s for s in result["steps"] if s["errors"] == 0 and s["p95_ms"] < P95_TARGET_MS]
            best = max(under, key=lambda s: s["answers_per_s"]) if under else None
            result["throughput_at_p95_under_1s"] = (
                {"users": best["users"], "answers_per_s": best["answers_per_s"], "p95_ms": best["p95_ms"]}
                if best else None)
            result["saturation"] = saturation(result["steps"], cores, workers * threads)

            if args.cached_users > 0:
                stop_gunicorn(server)
                server = start_gunicorn({**env, "CITEWISE_ANSWER_CACHE_TTL_S": "300"}, scratch / "gunicorn.log")
                processes.web = server.process.pid
                warm_up(server, tokens, workers * 2)
                originals = [c for c in pool if c["variant"] == "as written"]
                plan = {"tokens": tokens, "mode": "repeat", "seed": args.seed, "offset": 0,
                        "conversations": originals}
                figures = measured_step(server, plan, args.cached_users, args, scratch, processes, sampler, "cached")
                figures.pop("next_offset")
                figures["question_strings"] = len(originals)
                figures["cache_entries"] = answer_cache_footprint(redis_host, int(redis_port), redis_db)
                result["answer_cache_on"] = figures
                print(f"[load] cache on, {args.cached_users} users: {figures['answers_per_s']} answers/s, p95 "
                      f"{figures['p95_ms']} ms, {figures['cache_hits']} hits of {figures['requests']}", flush=True)
    finally:
        log = scratch / "gunicorn.log"
        if log.exists():
            tail = [line for line in log.read_text(errors="replace").splitlines()[-400:]
                    if '"level": "error"' in line or "Traceback" in line or "[ERROR]" in line]
            result["server_errors_logged"] = tail[-20:]
        if args.keep:
            print(f"[load] kept {scratch}", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.output.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("throughput_at_p95_under_1s", "saturation")}, indent=2))
    print(f"[load] wrote {args.output} and {args.output.with_suffix('.png')}")
    return result


def measured_step(server: Server, plan: dict[str, Any], users: int, args: argparse.Namespace, scratch: Path,
                  processes: Processes, sampler: CpuSampler, label: str) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    outcome = run_step(server, plan, users, args.step_seconds, scratch, processes, label)
    marks, rows = outcome["marks"], outcome["rows"]
    window = (marks["test_start"] + args.settle_seconds, marks["test_stop"])
    figures = {"users": users, **step_figures(rows, window), "cpu_percent": sampler.percent(window)}
    # CPU time per answer by component: what an answer costs wherever it runs, less distorted by what else shares
    # the machine than its wall time is.
    figures["cpu_ms_per_answer"] = {
        group: round(10 * figures["cpu_percent"][group] / figures["answers_per_s"], 1)
        for group in [*CPU_GROUPS[:4], "machine"] if figures["cpu_percent"] and figures["answers_per_s"]}
    figures["load_average_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    figures["load_generator_cpu_warnings"] = marks.get("cpu_warnings", 0)
    # The next step starts after the last conversation this one began (a request cut off by the step's end may
    # have been answered, so its question is not asked again).
    figures["next_offset"] = max((r["draw"] for r in rows), default=plan["offset"] - 1) + 1
    return figures


def answer_cache_footprint(host: str, port: int, db: int) -> dict[str, Any]:
    """How many answers the cache holds after the cached step, and what one takes in Redis (MEMORY USAGE of a
    sample), for sizing Redis."""
    import redis

    client = redis.Redis(host=host, port=port, db=db)
    keys = list(client.scan_iter(match="citewise:*answer*", count=1000))
    sizes = [client.memory_usage(key) or 0 for key in keys[:200]]
    return {"entries": len(keys), "mean_bytes": round(sum(sizes) / len(sizes)) if sizes else None,
            "max_bytes": max(sizes) if sizes else None}


def index_stats(url: str, name: str) -> dict[str, Any]:
    from elasticsearch import Elasticsearch

    stats = Elasticsearch(url, request_timeout=30).indices.stats(index=name).body["_all"]["primaries"]
    return {"documents": stats["docs"]["count"], "store_mib": round(stats["store"]["size_in_bytes"] / 2**20, 2)}


if __name__ == "__main__":
    main()
