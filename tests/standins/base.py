"""The base of every stand-in: a stdlib ThreadingHTTPServer on an ephemeral port of 127.0.0.1.

A subclass speaks one service's documented wire format (`default`) and may name its routes (`route`: a path by
default, a Slack method, a Connector operation). Tests script what the next requests to a route get (a normal
reply, a hang, malformed JSON, or a fault: a 429 with Retry-After, a 500), and read back every request it
received, with arrival times, to assert what was sent and how the client retried.

    with OpenAIStandIn() as server:
        server.script(CHAT_COMPLETIONS, status(429, retry_after=1), completion("Hotels cost 240 euros [1]."))
        ...
        assert len(server.requests_to(CHAT_COMPLETIONS)) == 2

    slack.fail("chat.postMessage", status=429, retry_after=40)  # the next call is throttled
    connector.fail("pagedmembers", status=500, times=None)  # every call fails, until connector.clear(...)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # as sent (still percent-encoded), without the query string
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() when the request had been read
    query: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}


@dataclass(frozen=True)
class Reply:
    """What the stand-in sends back: a JSON-able body or raw bytes, after an optional delay."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


# A scripted step: a fixed Reply, or a function of the request (to echo what was sent).
Step = Reply | Callable[[RecordedRequest], Reply]


def status(code: int, body: Any = None, *, retry_after: float | str | None = None) -> Reply:
    """An HTTP error reply; `retry_after` sets the Retry-After header (seconds)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Reply(code, body if body is not None else {"message": f"stand-in error {code}"}, headers)


def malformed() -> Reply:
    """A 200 whose JSON body is cut off half way."""
    return Reply(200, b'{"id": "broken", "message": {"role": "assistant", "content": [{"type": "te')


def hang(seconds: float, then: Step | None = None) -> Step:
    """Answer only after `seconds` (longer than the client's timeout), then `then` or a 200 {}."""

    def step(request: RecordedRequest) -> Reply:
        reply = (then(request) if callable(then) else then) if then is not None else Reply(200, {})
        return Reply(reply.status, reply.body, reply.headers, delay_s=seconds)

    return step


class StandInServer:
    """A scriptable HTTP server on 127.0.0.1 (port 0). Subclasses give each route a default behaviour."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[Step]] = {}
        self._standing: dict[str, Step] = {}  # faults that last until clear()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Behaviour -----------------------------------------------------------------------------------

    def default(self, request: RecordedRequest) -> Reply:
        """The reply when no step is scripted for the route; subclasses answer their own routes."""
        return Reply(404, {"message": f"no route for {request.method} {request.path}"})

    def route(self, request: RecordedRequest) -> str:
        """The name scripts and requests_to know a request by: its path, unless a subclass says otherwise."""
        return request.path

    def error_body(self, code: int) -> Any:
        """The body of a scripted fault, in the service's own error format."""
        return {"message": f"stand-in error {code}"}

    def recorded(self, request: RecordedRequest, reply: Reply) -> None:
        """Called with every request and what it got (scripted or not), for subclasses that keep their own log."""

    def script(self, route: str, *steps: Step) -> None:
        """Queue replies for the next requests to `route`, one step per request; then the default again."""
        with self._lock:
            self._scripts.setdefault(route, deque()).extend(steps)

    def always(self, route: str, step: Step, times: int = 100) -> None:
        self.script(route, *([step] * times))

    def fail(self, *routes: str, status: int, retry_after: float | str | None = None, times: int | None = 1,
             body: Any = None) -> None:
        """The next `times` requests to each route get `status` (with Retry-After if given) in the service's error
        format; with times=None, every request until clear()."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        reply = Reply(status, body if body is not None else self.error_body(status), headers)
        for route in routes:
            if times is None:
                with self._lock:
                    self._standing[route] = reply
            else:
                self.script(route, *([reply] * times))

    def clear(self, *routes: str) -> None:
        """Drop what is scripted for the routes: they get their default replies again."""
        with self._lock:
            for route in routes:
                self._scripts.pop(route, None)
                self._standing.pop(route, None)

    def requests_to(self, route: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if self.route(r) == route]

    def _respond(self, request: RecordedRequest) -> Reply:
        route = self.route(request)
        with self._lock:
            self.requests.append(request)
            queue = self._scripts.get(route)
            step = queue.popleft() if queue else self._standing.get(route)
        if step is None:
            reply = self.default(request)
        else:
            reply = step(request) if callable(step) else step
        reply = self.finish(request, reply)
        self.recorded(request, reply)
        return reply

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        """The reply as the service would send it for this request (e.g. streamed when the request asks so)."""
        return reply

    # Lifecycle -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandInServer:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle's algorithm on, each keep-alive reply then
            # waits for the client's delayed ACK (~40 ms), which no real service adds.
            disable_nagle_algorithm = True

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target = urlsplit(self.path)
                request = RecordedRequest(self.command, target.path, {k.lower(): v for k, v in self.headers.items()},
                                          body, time.monotonic(),
                                          {k: v[0] for k, v in parse_qs(target.query).items()})
                try:
                    reply = stand_in._respond(request)
                except Exception as exc:
                    reply = Reply(599, {"message": f"stand-in script failed: {exc!r}"})
                if reply.delay_s and stand_in._stopping.wait(reply.delay_s):
                    return  # shutting down: drop the connection
                payload = reply.encoded()
                try:
                    self.send_response(reply.status)
                    if not any(name.lower() == "content-type" for name in reply.headers):
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout) before the reply

            do_POST = do_GET = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"{type(self).__name__}-{server.server_address[1]}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def words(text: str) -> set[str]:
    return {w.strip(".,;:!?()[]\"'").lower() for w in text.split()} - {""}


def overlap_scores(query: str, documents: Iterable[str]) -> list[float]:
    """A deterministic stand-in relevance: the share of query words each document contains."""
    wanted = words(query)
    return [len(wanted & words(d)) / len(wanted) if wanted else 0.0 for d in documents]


# Words a question shares with every passage; the grounded stand-ins match on the others.
_FUNCTION_WORDS = frozenset({
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "do", "does", "for", "from",
    "get", "gets", "go", "has", "have", "how", "i", "if", "in", "is", "it", "its", "may", "me", "much", "many",
    "my", "of", "on", "or", "per", "should", "than", "that", "the", "their", "there", "this", "to", "up", "was",
    "we", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your"
})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Passage text that holds no sentence to quote: headings, table separators, fences.
_NOT_PROSE = re.compile(r"^\s*(?:#|\|?\s*-{3}|```)")


def content_words(text: str) -> set[str]:
    """The words that carry meaning, crudely stemmed ("stays" and "stay" match)."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in words(text) if w not in _FUNCTION_WORDS}


def best_sentence(question: str, passages: Iterable[tuple[str, str]], *, at_least: int = 2) -> tuple[str, str] | None:
    """What a model grounded in the passages would quote: (passage id, sentence) for the sentence sharing the most
    content words with the question (the earlier passage on a tie), or None when none shares `at_least`."""
    wanted = content_words(question)
    best: tuple[int, str, str] | None = None
    for passage_id, text in passages:
        for line in text.splitlines():
            if _NOT_PROSE.match(line):
                continue
            for sentence in _SENTENCE_END.split(line.strip()):
                shared = len(wanted & content_words(sentence))
                if shared >= at_least and (best is None or shared > best[0]):
                    best = (shared, passage_id, sentence.strip())
    return (best[1], best[2]) if best else None


def follow_up_of(prompt: str) -> str | None:
    """The follow-up question of a query-rewrite prompt (answers/prompts/rewrite_v1.txt), or None if it is not one."""
    match = re.search(r"<follow_up>\s*(.*?)\s*</follow_up>", prompt, re.S)
    return match.group(1) if match else None
