"""The web pages the console serves beside the admin: a search page, the chat, the document viewer, sign-out, health
and metrics."""

from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from answers import progress, throttling
from answers import services as answering
from answers.citations import source_type
from answers.models import Feedback
from answers.selectors import url_at_section
from audit import services as audit
from connectors.models import Source
from console.selectors import broker_status
from core.config import current
from core.errors import CitewiseError, RateLimited
from identity.selectors import principals_for
from retrieval import selectors
from retrieval.services import get_backend
from search.types import SearchMode, SearchUnavailable

logger = logging.getLogger("citewise.chat")


@login_required
def search_page(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:1000]
    hits, error, retry_after, status = [], "", None, 200
    if query:
        try:
            throttling.check_search(user=request.user)
            hits = selectors.search(query, principals=principals_for(request.user), mode=SearchMode.HYBRID, limit=10)
        except CitewiseError as exc:
            logger.warning("search page: %s: %s", exc.code, exc)
            error, status = exc.user_message, exc.http_status
            retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
    status = status if error else 200
    response = render(request, "console/search.html", {"query": query, "hits": hits, "error": error}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_GET
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(request, "console/chat.html", {
        "reasons": Feedback.Reason.choices, "max_question_chars": answering.MAX_QUESTION_CHARS,
    })


# Answer text goes out in pieces of about this many characters, split at whitespace.
STREAM_PIECE_CHARS = 24


def answer_pieces(text: str, size: int = STREAM_PIECE_CHARS) -> list[str]:
    """Split text at word boundaries into pieces of at least `size` characters; joined, they are `text` exactly."""
    pieces, current = [], ""
    for word in re.findall(r"\S+\s*|\s+", text):
        current += word
        if len(current) >= size:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces


def _event(name: str, data: Any) -> bytes:
    # JSON keeps every payload on one line, so no data: line can be split by a newline in the answer.
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# What the chat shows while an answer is being made (answers/progress.py's stages).
PROGRESS_LABELS = {"searching": "Searching your documents…", "reading": "Reading {passages} passages…",
                   "writing": "Writing the answer…", "checking": "Checking every citation…"}
_FINISHED = object()


def _asked_in_a_thread(work: Callable[[], Any], events: queue.Queue) -> threading.Thread:
    """Run `work` in a thread of its own, on this request's database connection.

    The request thread only waits on `events` meanwhile (and, once the client is gone, joins the thread), so the
    connection is never used by both at once; sharing it is what lets the question, the answer and the audit
    record go into the same transaction a test or a request already has open.
    """
    shared = connections[DEFAULT_DB_ALIAS]
    shared.inc_thread_sharing()

    def run() -> None:
        connections[DEFAULT_DB_ALIAS] = shared
        try:
            events.put(("result", work()))
        except CitewiseError as exc:
            events.put(("citewise_error", exc))
        except Exception:
            logger.exception("chat: answering failed")
            events.put(("failure", None))
        finally:
            events.put((_FINISHED, None))

    thread = threading.Thread(target=run, name="chat-answer", daemon=True)
    thread.start()
    return thread


def _answer_events(request: HttpRequest, question: str, conversation_id: uuid.UUID | None) -> Iterator[bytes]:
    """The answer's progress as it happens (stages; a streaming composer's draft), then the verified answer."""
    yield b": thinking\n\n"  # sent at once, so the browser knows the request is under way
    events: queue.Queue = queue.Queue()

    def report(stage: str, data: dict[str, Any]) -> None:
        events.put(("draft" if stage == "draft" else "progress", {"stage": stage, **data}))

    def work() -> Any:
        with progress.listening(report):
            return answering.ask(question, principals=principals_for(request.user), user=request.user,
                                 conversation_id=conversation_id, surface="web")

    thread = _asked_in_a_thread(work, events)
    outcome: tuple[str, Any] = ("failure", None)
    try:
        while True:
            kind, payload = events.get()
            if kind is _FINISHED:
                break
            if kind == "progress":
                label = PROGRESS_LABELS.get(payload["stage"], "")
                yield _event("progress", {**payload, "label": label.format(**payload) if label else ""})
            elif kind == "draft":
                yield _event("draft", {"text": payload["text"]})
            else:
                outcome = (kind, payload)
    finally:
        thread.join()  # a client gone mid-answer: the answer is still recorded, and the connection is ours again
        connections[DEFAULT_DB_ALIAS].dec_thread_sharing()
    kind, payload = outcome
    if kind == "citewise_error":
        logger.warning("chat: %s: %s", payload.code, payload)
        error: dict[str, Any] = {"status": payload.http_status, "message": payload.user_message, "code": payload.code}
        if isinstance(payload, RateLimited):
            error["retry_after"] = payload.retry_after
        yield _event("error", error)
        return
    if kind == "failure":
        yield _event("error", {"status": 500, "message": CitewiseError.user_message, "code": CitewiseError.code})
        return
    data = payload.as_dict()
    yield _event("meta", {key: data[key] for key in ("answer_id", "conversation_id", "question", "search_query",
                                                      "corrected_query", "refused", "composer", "notice")})
    for piece in answer_pieces(data["answer"]):
        yield _event("token", {"text": piece})
    # The structured answer (lists, tables, code) replaces the streamed text once it is complete.
    yield _event("citations", {"citations": data["citations"], "nearest_documents": data["nearest_documents"],
                               "refused": data["refused"], "answer_html": data["answer_html"]})
    yield _event("done", {"answer_id": data["answer_id"], "timings_ms": data["timings_ms"]})


@require_POST
def chat_stream(request: HttpRequest) -> HttpResponseBase:
    """Server-Sent Events: meta, token... (the answer in pieces), citations, done; or one error event.

    A POST (form fields `q`, `conversation_id`): asking records a question in the user's name, so it goes through
    Django's CSRF check like any other change; the page sends the token in X-CSRFToken.
    """
    if not request.user.is_authenticated:
        return HttpResponse("sign in first", status=401, content_type="text/plain")
    # Beside the CSRF token: a browser that says another site sent the request is refused outright.
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return HttpResponseForbidden("cross-site requests are refused")
    question = request.POST.get("q", "")
    raw_conversation = request.POST.get("conversation_id", "").strip()
    try:
        conversation_id = uuid.UUID(raw_conversation) if raw_conversation else None
    except ValueError:
        events: Iterator[bytes] = iter([_event("error", {"status": 400, "message": "unknown conversation"})])
    else:
        events = _answer_events(request, question, conversation_id)
    response = StreamingHttpResponse(events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache, no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


def _check(name: str, check: Callable[[], str]) -> str:
    try:
        return check()
    except Exception as exc:  # noqa: BLE001 - a probe reports every failure, it never raises one
        logger.warning("%s check failed: %s", name, exc)
        return f"error: {exc}"


def _database() -> str:
    connection.ensure_connection()
    return "ok"


def _migrated_database() -> str:
    Source.objects.exists()  # a table the migrations create: connected is not enough to serve
    return "ok"


def _search_ready() -> str:
    status = selectors.index_status()
    if status != "ok":
        return status
    info = get_backend().index_info()
    model = current().embedding_model
    if info is not None and info.embedding_model != model:
        return (f"not ready: the index holds vectors from {info.embedding_model!r}, not {model!r}; run "
                "`manage.py reindex`")
    # The read path itself (full-text tables, the ACL filter), without loading the embedding model.
    selectors.search("readiness probe", principals=frozenset(), mode=SearchMode.BM25, limit=1)
    return "ok"


def _broker() -> str:
    return broker_status(settings.CELERY_BROKER_URL, READY_TIMEOUT_S)


READY_TIMEOUT_S = 3
_PASSING = ("ok", "empty", "not configured: tasks run in-process")


def _probe_response(checks: dict[str, str], good: str, bad: str) -> JsonResponse:
    passing = all(value in _PASSING for value in checks.values())
    return JsonResponse({"status": good if passing else bad, "checks": checks,
                         "backend": current().search_backend}, status=200 if passing else 503)


def health(request: HttpRequest) -> JsonResponse:
    """Liveness, kept cheap: the database answers and the search index is there (or nothing was ingested yet).

    "index missing" (the database records indexed documents the index does not have) is an outage, not "empty".
    """
    return _probe_response({"database": _check("database", _database),
                            "search": _check("search", selectors.index_status)}, "ok", "degraded")


def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: the database is migrated, the index answers a search with the configured model, and the
    Celery broker (when CELERY_BROKER_URL is set) accepts connections."""
    return _probe_response({"database": _check("database", _migrated_database),
                            "search": _check("search", _search_ready),
                            "broker": _check("broker", _broker)}, "ready", "not ready")


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics for a scraper holding CITEWISE_METRICS_TOKEN, or a signed-in staff member.

    The client address is never trusted: behind a reverse proxy on the same host every request is "local".
    """
    expected, offered = settings.CITEWISE_METRICS_TOKEN, _bearer_token(request)
    # compare_digest: the time taken must not tell a guesser how much of the token was right.
    scraper = bool(expected) and bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())
    if not (scraper or (request.user.is_authenticated and request.user.is_staff)):
        if request.user.is_authenticated:
            return HttpResponseForbidden("metrics are for staff or a scraper with the metrics token")
        response = HttpResponse("metrics need `Authorization: Bearer <CITEWISE_METRICS_TOKEN>` or a staff session",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


class SourceRedirect(HttpResponseRedirect):
    # Only web addresses are followed: browsers refuse file:// links from a web page, so other documents open in
    # the built-in viewer instead.
    allowed_schemes = ["http", "https"]


# A section ordinal as a citation link carries it (?section=N); anything else is no section.
_SECTION = re.compile(r"\d{1,6}")


def _section(request: HttpRequest) -> int | None:
    raw = request.GET.get("section", "")
    return int(raw) if _SECTION.fullmatch(raw) else None


def _is_web(url: str) -> bool:
    return url.split(":", 1)[0].lower() in SourceRedirect.allowed_schemes if ":" in url else False


def viewer_url(document_id: str, section: int | None) -> str:
    """The built-in viewer's address for a document, scrolled to a section when one is given."""
    url = reverse("document", kwargs={"document_id": document_id})
    return f"{url}?section={section}#section-{section}" if section is not None else url


def _unavailable(exc: SearchUnavailable) -> HttpResponse:
    return HttpResponse(exc.user_message, status=exc.http_status, content_type="text/plain")


@login_required
@require_GET
def open_document(request: HttpRequest, document_id: str) -> HttpResponse:
    """Open a document where the reader can read it: at its source when that is a web address (at the section
    `?section=N` names, as its citation links), else in the built-in viewer. Only if the signed-in user may read it
    now; else 404, never 403."""
    section = _section(request)
    principals = principals_for(request.user)
    try:
        document = selectors.readable_document(document_id, principals)
        url = url_at_section(document, section, principals) if document is not None and _is_web(document.url) else ""
    except SearchUnavailable as exc:
        return _unavailable(exc)
    audit.record(request.user, "document.open", object_type="connectors.document", object_id=document_id[:100],
                 surface="web", detail={"visible": document is not None, "redirected": bool(url)})
    if document is None:
        raise Http404("unknown document")
    return SourceRedirect(url) if url else HttpResponseRedirect(viewer_url(document_id, section))


@login_required
@require_GET
def document_page(request: HttpRequest, document_id: str) -> HttpResponse:
    """The built-in viewer: a document's indexed text, section by section, the cited one (`?section=N`) marked
    and scrolled to (#section-N). Only if the signed-in user may read it now; else the same 404 as a missing one."""
    section = _section(request)
    try:
        shown = selectors.readable_document_text(document_id, principals_for(request.user))
    except SearchUnavailable as exc:
        return _unavailable(exc)
    audit.record(request.user, "document.read", object_type="connectors.document", object_id=document_id[:100],
                 surface="web", detail={"visible": shown is not None, "section": section})
    if shown is None:
        raise Http404("unknown document")
    document = shown.document
    sections = [{
        "ordinal": part.ordinal,
        # The document's title is its page heading: a first section under that same heading repeats nothing.
        "heading": "" if part.heading_path == (document.title,) else (part.heading_path or ("",))[-1],
        "level": min(max(len(part.heading_path), 2), 6),
        "paragraphs": [p.strip("\n") for p in re.split(r"\n\s*\n", part.text) if p.strip()],
        "cited": part.ordinal == section,
    } for part in shown.sections]
    return render(request, "console/document.html", {
        "document": document, "sections": sections, "source_type": source_type(document.mime_type),
        "source_url": document.url if _is_web(document.url) else "",
        "cited_missing": section is not None and not any(part["cited"] for part in sections),
    })


class SignOutView(auth_views.LogoutView):
    """Signing out is a POST (with the CSRF token, so another site cannot sign a user out); a GET, from a
    bookmark or a typed address, shows a page with the button instead of a 405."""

    http_method_names = ["get", "post", "options"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return render(request, "console/logout.html")
