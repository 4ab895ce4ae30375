"""The simulated askers of benchmarks/load.py: locust runs this file, one process per concurrency step.

Not meant to be run by hand: load.py writes the plan (the askers' API tokens, the conversations to ask, where to
write what happened) to a JSON file and names it in CITEWISE_LOAD_PLAN. Each simulated user asks one conversation
after another with no think time (a closed loop: N users = at most N requests in flight), each turn a POST
/api/v1/ask with the asker's DRF token, a follow-up in the conversation its first turn opened. Every finished
request becomes a row (wall-clock start and end, status, the server's stage timings) written when locust quits;
load.py computes the figures from those rows, not from locust's own rounded percentiles.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

_PLAN_FILE = os.environ.get("CITEWISE_LOAD_PLAN", "")
if not _PLAN_FILE:
    raise SystemExit("benchmarks/load_locustfile.py is run by benchmarks/load.py (CITEWISE_LOAD_PLAN is not set)")
PLAN: dict[str, Any] = json.loads(Path(_PLAN_FILE).read_text())
ROWS: list[dict[str, Any]] = []
MARKS: dict[str, Any] = {"cpu_warnings": 0}


def _draws() -> Iterator[tuple[int, dict[str, Any]]]:
    """The conversations in the order the users take them: the shuffled pool from the plan's offset on ("unique",
    so no question string repeats until the pool is used up), or drawn with replacement ("repeat")."""
    pool = PLAN["conversations"]
    if PLAN["mode"] == "repeat":
        rng = random.Random(PLAN["seed"])
        for draw in count(PLAN["offset"]):
            yield draw, rng.choice(pool)
    for draw in count(PLAN["offset"]):
        yield draw, pool[draw % len(pool)]


_NEXT = _draws()


class Asker(FastHttpUser):
    wait_time = constant(0)
    connection_timeout = 10.0
    network_timeout = float(PLAN.get("request_timeout_s", 60))

    @task
    def converse(self) -> None:
        draw, conversation = next(_NEXT)  # gevent: one greenlet runs at a time, so the shared iterator is safe
        token = PLAN["tokens"][conversation["asker"]]
        conversation_id = None
        for turn_number, turn in enumerate(conversation["turns"]):
            body: dict[str, Any] = {"question": turn["question"]}
            if conversation_id:
                body["conversation_id"] = conversation_id
            started = time.time()
            with self.client.post("/api/v1/ask", json=body, headers={"Authorization": f"Token {token}"},
                                  name="/api/v1/ask", catch_response=True) as response:
                ended = time.time()
                row: dict[str, Any] = {
                    "draw": draw, "turn": turn_number, "asker": conversation["asker"], "kind": turn["kind"],
                    "variant": conversation["variant"], "start": started, "end": ended,
                    "ms": (ended - started) * 1000, "status": response.status_code or 0,
                }
                answer = None
                if response.status_code == 200:
                    try:
                        answer = response.json()
                    except ValueError:
                        answer = None
                if isinstance(answer, dict) and "refused" in answer:
                    row.update(refused=bool(answer["refused"]), timings=answer.get("timings_ms") or {})
                    conversation_id = answer.get("conversation_id")
                    response.success()
                else:
                    row["error"] = (f"HTTP {response.status_code}" if response.status_code
                                    else f"{type(response.error).__name__}: {response.error}")[:300]
                    response.failure(row["error"])
            ROWS.append(row)
            if "error" in row:
                break  # the follow-ups need the conversation this turn would have opened


@events.test_start.add_listener
def _started(**_: Any) -> None:
    MARKS["test_start"] = time.time()


@events.test_stop.add_listener
def _stopped(**_: Any) -> None:
    MARKS["test_stop"] = time.time()


@events.cpu_warning.add_listener
def _cpu_warning(**_: Any) -> None:
    # Locust warns when its own process passes 90 % of a core: the load generator, not the server, would then be
    # what limits the step.
    MARKS["cpu_warnings"] += 1


@events.quitting.add_listener
def _write_rows(**_: Any) -> None:
    Path(PLAN["rows"]).write_text(json.dumps({"marks": MARKS, "rows": ROWS}))
