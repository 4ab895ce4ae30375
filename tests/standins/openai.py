"""A stand-in for an OpenAI-compatible chat completions API: POST /v1/chat/completions.

Response shape follows the OpenAI API reference (the chat completion object): id, object
"chat.completion", created, model, choices[{index, message{role, content}, finish_reason}],
usage{prompt_tokens, completion_tokens, total_tokens}; errors are {"error": {message, type, param, code}}.
A request with `"stream": true` gets the same completion as Server-Sent Events: "chat.completion.chunk" objects
whose choices[0].delta carry the role, then the content a few words at a time, then the finish_reason; with
`stream_options.include_usage` a last chunk with empty choices and the usage; then `data: [DONE]`.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from tests.standins.base import RecordedRequest, Reply, StandInServer, Step, best_sentence, follow_up_of

CHAT_COMPLETIONS = "/v1/chat/completions"


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def error_body(message: str, kind: str = "server_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def completion_body(content: str | None, request: dict, *, prompt_tokens: int | None = None,
                    completion_tokens: int | None = None, finish_reason: str = "stop") -> dict:
    prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []) if isinstance(m, dict))
    prompt_tokens = prompt_tokens if prompt_tokens is not None else _estimate_tokens(prompt)
    completion_tokens = completion_tokens if completion_tokens is not None else _estimate_tokens(content or "")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model", "stand-in"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def completion(content: str | None, **kwargs: object) -> Step:
    """Reply with `content` as the assistant message."""
    return lambda request: Reply(200, completion_body(content, request.json, **kwargs))


_PASSAGE = re.compile(r'<passage number="(\d+)">\nSource: [^\n]*\n(.*?)\n</passage>', re.S)


def grounded(request: RecordedRequest) -> Reply:
    """A model that answers from what it was sent: the sentence of the fenced passages sharing the most words with
    the question, quoted with its passage's [n] before the final stop; NOT_FOUND when none shares enough. A query
    rewrite is answered with the follow-up as asked."""
    body = request.json
    prompt = str(body["messages"][-1].get("content", ""))
    follow_up = follow_up_of(prompt)
    if follow_up is not None:
        return Reply(200, completion_body(follow_up, body))
    block = prompt[prompt.find("<passages>"):prompt.rfind("</passages>")] if "<passages>" in prompt else ""
    question = prompt.rsplit("Question: ", 1)[-1]
    found = best_sentence(question, _PASSAGE.findall(block))
    if found is None:
        return Reply(200, completion_body("NOT_FOUND", body))
    number, sentence = found
    stop = sentence[-1] if sentence[-1] in ".!?" else "."
    return Reply(200, completion_body(f"{sentence.rstrip('.!?')} [{number}]{stop}", body))


class OpenAIStandIn(StandInServer):
    """Unscripted, it answers NOT_FOUND (a valid reply that says the passages do not answer)."""

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        return _streaming(reply, request)

    def default(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != CHAT_COMPLETIONS:
            return Reply(404, error_body(f"Unknown request URL: {request.method} {request.path}",
                                         "invalid_request_error", "unknown_url"))
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return Reply(401, error_body("You didn't provide an API key.", "invalid_request_error"))
        try:
            body = request.json
        except ValueError:
            return Reply(400, error_body("We could not parse the JSON body of your request.", "invalid_request_error"))
        if "model" not in body or not body.get("messages"):
            return Reply(400, error_body("model and messages are required", "invalid_request_error"))
        return Reply(200, completion_body("NOT_FOUND", body))


def streamed(body: dict, request: dict) -> bytes:
    """A chat completion body as the SSE stream of chunks the API sends for `stream: true`."""
    choice = body["choices"][0]
    content = choice["message"]["content"] or ""
    base = {"id": body["id"], "object": "chat.completion.chunk", "created": body["created"], "model": body["model"]}

    def chunk(choices: list[dict], **extra: object) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    events = [chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    events += [chunk([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
               for piece in re.findall(r"\S+\s*|\s+", content)]
    events.append(chunk([{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]))
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append(chunk([], usage=body["usage"]))
    return b"".join(events) + b"data: [DONE]\n\n"


def _streaming(reply: Reply, request: RecordedRequest) -> Reply:
    try:
        asked = request.json
    except ValueError:
        return reply
    if not (isinstance(asked, dict) and asked.get("stream") and reply.status == 200 and isinstance(reply.body, dict)
            and reply.body.get("object") == "chat.completion"):
        return reply
    return Reply(200, streamed(reply.body, asked), {**reply.headers, "Content-Type": "text/event-stream"},
                 reply.delay_s)
