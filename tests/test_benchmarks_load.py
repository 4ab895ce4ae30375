"""benchmarks/load.py's pieces at a tiny scale: the question mix, one locust step against a local stub of the API,
the figures computed from its rows, and the CPU accounting of processes that come and go. The full run (gunicorn,
PostgreSQL, Elasticsearch, Redis) is the benchmark itself (docs/benchmarks.md), not a test."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import load  # noqa: E402


def _evaluation_questions() -> list[dict]:
    return [json.loads(line) for line in load.EVALUATION_QUESTIONS.read_text().splitlines() if line.strip()]


def test_the_pool_asks_every_question_in_every_wording_with_follow_ups_in_their_conversation():
    people = [person["id"] for person in load.read_people()]
    pool = load.question_pool(people, seed=1)
    evaluation = _evaluation_questions()
    demo = sum(1 for name in ("answerable", "unanswerable")
               for line in (load.DEMO_QUESTIONS / f"{name}.jsonl").read_text().splitlines() if line.strip())

    assert sum(len(c["turns"]) for c in pool) == (len(evaluation) + demo) * len(load.VARIANTS)
    originals = [c for c in pool if c["variant"] == "as written"]
    asked = {(c["asker"], turn["question"]) for c in originals for turn in c["turns"]}
    assert {(q["asker"], q["question"]) for q in evaluation} <= asked
    # A follow-up is asked after the question it follows, in the same conversation, by the same person.
    by_id = {q["id"]: q for q in evaluation}
    follow_up = next(q for q in evaluation if q.get("follows"))
    conversation = next(c for c in originals if any(t["question"] == follow_up["question"] for t in c["turns"]))
    questions = [turn["question"] for turn in conversation["turns"]]
    assert questions.index(by_id[follow_up["follows"]]["question"]) < questions.index(follow_up["question"])
    assert conversation["asker"] == follow_up["asker"]
    # Every asker is one of the people who get a token; the reworded questions differ from the originals.
    assert {c["asker"] for c in pool} <= set(people)
    typos = [c for c in pool if c["variant"] == "transposed letters"]
    original_text = {tuple(t["question"] for t in c["turns"]) for c in originals}
    assert sum(tuple(t["question"] for t in c["turns"]) not in original_text for c in typos) > 0.9 * len(typos)
    assert load.question_pool(people, seed=1) == pool  # the same seed, the same run


def test_rewordings_keep_the_words_but_change_the_string():
    question = "How many vacation days do I get in my first year?"
    assert load.reworded(question, "informal", load.random.Random(0)) == "how many vacation days do i get in my first year"
    transposed = load.reworded(question, "transposed letters", load.random.Random(0))
    assert transposed != question and sorted(transposed) == sorted(question)
    dropped = load.reworded(question, "dropped letter", load.random.Random(0))
    assert len(dropped) == len(question) - 1
    assert load.reworded(question, "chatty opener", load.random.Random(0)).endswith(question[1:])


class _StubApi(BaseHTTPRequestHandler):
    """POST /api/v1/ask: a 500 for a question that says "fail", an answer (with a conversation id) otherwise."""

    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _StubApi.seen.append({**body, "authorization": self.headers["Authorization"]})
        if "fail" in body["question"]:
            payload, status = b'{"error": "boom"}', 500
        else:
            payload, status = json.dumps({"refused": body["question"].startswith("refuse"),
                                          "conversation_id": "c-1", "timings_ms": {"retrieve": 3.0}}).encode(), 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _StubApi.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_step_asks_conversations_with_their_askers_tokens_and_counts_errors(stub_api, tmp_path):
    conversations = [
        {"asker": "alice", "variant": "as written", "turns": [{"question": "what is the pto policy", "kind": "fact"},
                                                               {"question": "and carry over?", "kind": "follow-up"}]},
        {"asker": "ben", "variant": "as written", "turns": [{"question": "refuse this one", "kind": "not-in-corpus"}]},
        {"asker": "ben", "variant": "as written", "turns": [{"question": "fail please", "kind": "fact"},
                                                             {"question": "never asked", "kind": "follow-up"}]},
    ]
    plan = {"tokens": {"alice": "token-a", "ben": "token-b"}, "mode": "unique", "seed": 0, "offset": 0,
            "conversations": conversations}
    server = load.Server(process=None, base=stub_api, log=tmp_path / "log", env={})  # type: ignore[arg-type]
    processes = load.Processes()

    outcome = load.run_step(server, plan, users=2, seconds=3, scratch=tmp_path, processes=processes, label="t")

    rows, marks = outcome["rows"], outcome["marks"]
    assert rows and marks["test_stop"] > marks["test_start"]
    assert processes.load_generator is None  # the step's process is forgotten once it has exited
    # Each asker's own token; a follow-up carries the conversation its first turn opened; a failed turn ends its
    # conversation, so "never asked" never is.
    assert {(s["question"], s["authorization"]) for s in _StubApi.seen} == {
        ("what is the pto policy", "Token token-a"), ("and carry over?", "Token token-a"),
        ("refuse this one", "Token token-b"), ("fail please", "Token token-b")}
    assert all(s.get("conversation_id") == "c-1" for s in _StubApi.seen if s["question"] == "and carry over?")
    assert all("conversation_id" not in s for s in _StubApi.seen if s["question"] != "and carry over?")

    figures = load.step_figures(rows, (marks["test_start"], marks["test_stop"]))
    assert figures["requests"] == len([r for r in rows if marks["test_start"] <= r["end"] <= marks["test_stop"]])
    assert figures["errors"] > 0 and figures["error_kinds"] == {"HTTP 500": figures["errors"]}
    assert 0 < figures["refused_share"] < 1
    assert figures["server_stage_p50_ms"] == {"retrieve": 3.0}
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"]
    # In "unique" mode the draws run through the pool in order from the offset.
    assert sorted({r["draw"] for r in rows})[:3] == [0, 1, 2]


def test_figures_count_only_requests_finished_inside_the_window():
    rows = [{"start": 0.0, "end": 0.5, "ms": 500.0, "refused": False, "timings": {}},
            {"start": 1.0, "end": 1.2, "ms": 200.0, "refused": True, "timings": {}},
            {"start": 1.5, "end": 1.9, "ms": 400.0, "error": "HTTP 502"},
            {"start": 1.9, "end": 3.5, "ms": 1600.0, "refused": False, "timings": {}}]
    figures = load.step_figures(rows, (1.0, 3.0))
    assert figures["requests"] == 2 and figures["errors"] == 1 and figures["error_rate"] == 0.5
    assert figures["answers_per_s"] == 0.5 and figures["requests_per_s"] == 1.0
    assert figures["p50_ms"] == 300.0 and figures["refused_share"] == 1.0


def test_the_best_step_under_the_target_and_the_knee():
    steps = [{"users": 1, "answers_per_s": 2.0, "cpu_percent": {"machine": 120.0, "web": 90.0}},
             {"users": 2, "answers_per_s": 3.5, "cpu_percent": {"machine": 195.0, "web": 150.0}},
             {"users": 4, "answers_per_s": 3.6, "cpu_percent": {"machine": 199.0, "web": 160.0}}]
    verdict = load.saturation(steps, cores=2, concurrency=16)
    assert verdict["throughput_stops_growing_after_users"] == 2
    assert verdict["best_step_users"] == 4 and verdict["verdict"].startswith("CPU") and "web" in verdict["verdict"]


def test_cpu_of_a_child_that_exited_between_snapshots_still_counts(tmp_path):
    """The postmaster's one-request backends come and go between samples; their parent's reaped-children times
    keep them. The same holds for this process's children, which is what this checks."""
    before = load.cpu_snapshot(load.Processes())
    subprocess.run([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"], check=True)
    after = load.cpu_snapshot(load.Processes())
    assert after["load generator"] > before["load generator"]
    assert set(after) == {*load.CPU_GROUPS, "machine"}


def test_help_runs_without_services():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks/load.py"), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "--step-seconds" in result.stdout and "--users" in result.stdout
