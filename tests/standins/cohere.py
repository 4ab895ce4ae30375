"""A stand-in for the Cohere v2 API: POST /v2/chat (RAG with documents and native citations) and /v2/rerank.

Response shapes follow docs.cohere.com (Chat v2: id, finish_reason, message{role, content[{type, text}],
citations[{start, end, text, sources[{type: "document", id, document}]}]}, usage{billed_units, tokens};
Rerank v2: id, results[{index, relevance_score}] best first, meta{api_version, billed_units}).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tests.standins.base import (
    RecordedRequest,
    Reply,
    StandInServer,
    Step,
    best_sentence,
    follow_up_of,
    overlap_scores,
)

CHAT = "/v2/chat"
RERANK = "/v2/rerank"


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _request_text(body: dict) -> str:
    parts = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(item.get("text", "")) for item in content if isinstance(item, dict))
    for document in body.get("documents", []) or []:
        parts.append(str(document.get("data", document)) if isinstance(document, dict) else str(document))
    return "\n".join(parts)


def chat_body(text: str, citations: Sequence[tuple[str, Sequence[str]]], request: dict, *,
              input_tokens: int | None = None, output_tokens: int | None = None,
              finish_reason: str = "COMPLETE") -> dict:
    """A /v2/chat response whose `citations` cite each phrase (found in `text`) to the given document ids."""
    documents = {str(d.get("id")): d for d in request.get("documents", []) or [] if isinstance(d, dict)}
    rendered = []
    for phrase, ids in citations:
        start = text.index(phrase)
        sources = []
        for doc_id in ids:
            data = dict((documents.get(doc_id) or {}).get("data") or {})
            sources.append({"type": "document", "id": doc_id, "document": {"id": doc_id, **data}})
        rendered.append({"start": start, "end": start + len(phrase), "text": phrase, "sources": sources,
                         "type": "TEXT_CONTENT"})
    billed_in = input_tokens if input_tokens is not None else _estimate_tokens(_request_text(request))
    billed_out = output_tokens if output_tokens is not None else _estimate_tokens(text)
    return {
        "id": str(uuid.uuid4()),
        "finish_reason": finish_reason,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}], "citations": rendered},
        "usage": {"billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
                  "tokens": {"input_tokens": billed_in + 180, "output_tokens": billed_out + 2}},
    }


def chat(text: str, citations: Sequence[tuple[str, Sequence[str]]] = (), **kwargs: object) -> Step:
    """Answer `text`, citing each (phrase, [document ids]); the cited documents are echoed from the request."""
    return lambda request: Reply(200, chat_body(text, citations, request.json, **kwargs))


def rerank_body(request: dict, scores: Sequence[float]) -> dict:
    top_n = request.get("top_n") or len(scores)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_n]
    return {
        "id": str(uuid.uuid4()),
        "results": [{"index": i, "relevance_score": float(scores[i])} for i in order],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }


def rerank(scores: Sequence[float]) -> Step:
    """Score the request's documents with `scores` (one per document, in the order sent)."""

    def step(request: RecordedRequest) -> Reply:
        body = request.json
        if len(scores) != len(body["documents"]):
            return Reply(400, {"message": f"scripted {len(scores)} scores for {len(body['documents'])} documents"})
        return Reply(200, rerank_body(body, scores))

    return step


def grounded(request: RecordedRequest) -> Reply:
    """A model that answers from the documents it was sent: the sentence sharing the most words with the question,
    cited natively to its document; a decline ("NOT_FOUND", citing nothing) when none shares enough. A query
    rewrite is answered with the follow-up as asked."""
    body = request.json
    prompt = str(body["messages"][-1].get("content", ""))
    follow_up = follow_up_of(prompt)
    if follow_up is not None:
        return Reply(200, chat_body(follow_up, [], body))
    question = prompt.rsplit("Question: ", 1)[-1]
    documents = [(str(d.get("id")), str((d.get("data") or {}).get("snippet", "")))
                 for d in body.get("documents") or [] if isinstance(d, dict)]
    found = best_sentence(question, documents)
    if found is None:
        return Reply(200, chat_body("NOT_FOUND", [], body))
    document_id, sentence = found
    return Reply(200, chat_body(sentence, [(sentence.rstrip(".!?"), [document_id])], body))


class CohereStandIn(StandInServer):
    """Unscripted, /v2/chat answers with the first sentence of document 1 cited to it, and /v2/rerank
    scores documents by query-word overlap."""

    def default(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path not in (CHAT, RERANK):
            return super().default(request)
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply(401, {"message": "no api key supplied"})
        try:
            body = request.json
        except ValueError:
            return Reply(400, {"message": "invalid request: body is not JSON"})
        if "model" not in body:
            return Reply(400, {"message": "invalid request: model must be specified"})
        if request.path == RERANK:
            if not isinstance(body.get("documents"), list) or not body.get("query"):
                return Reply(400, {"message": "invalid request: query and documents are required"})
            return Reply(200, rerank_body(body, overlap_scores(body["query"], map(str, body["documents"]))))
        if not body.get("messages"):
            return Reply(400, {"message": "invalid request: messages must not be empty"})
        documents = body.get("documents") or []
        if not documents:
            return Reply(200, chat_body("I don't have documents to answer from.", [], body))
        first = documents[0]
        snippet = str(first.get("data", {}).get("snippet", "")).strip()
        sentence = snippet.split(". ")[0].rstrip(".") + "."
        return Reply(200, chat_body(sentence, [(sentence.rstrip("."), [str(first.get("id"))])], body))
