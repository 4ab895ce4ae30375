"""The HTTP API (/api/v1): ask, search, feedback. Thin views: validate, call one service, shape the reply.

Who is asking comes from authentication only (an API token or the browser session), never from the body.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from answers import selectors as answer_selectors
from answers import services as answering
from answers import throttling
from answers.citations import source_type
from api.serializers import (
    AnswerSerializer,
    AskRequestSerializer,
    ConversationListSerializer,
    ConversationRenameSerializer,
    ConversationSerializer,
    ErrorSerializer,
    FeedbackRequestSerializer,
    FeedbackSerializer,
    SearchFiltersSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
)
from audit import services as audit
from connectors.models import Source
from core.errors import NotFound
from identity.selectors import principals_for
from retrieval import selectors
from search.types import IndexedDocument, SearchMode

logger = logging.getLogger("citewise.api")



class AnyContentTypeJSONParser(JSONParser):
    """Every body is read as JSON, whatever its Content-Type: a form or plain-text body is a 400, not a 415."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # Python's json recurses per nesting level: `[[[[…` 100,000 deep is a RecursionError, not a ValueError.
            raise ParseError("JSON parse error - nested too deeply") from None


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input: the body names the field and the problem."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
}
RATE_LIMITED = OpenApiResponse(ErrorSerializer, description=(
    "Too many requests from you: wait the number of seconds in the Retry-After header (also `retry_after`)."))


class ApiView(APIView):
    # Token first, so that a request without credentials gets 401 with `WWW-Authenticate: Token`.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    parser_classes = [AnyContentTypeJSONParser]


class AskView(ApiView):
    @extend_schema(
        operation_id="ask",
        summary="Ask a question",
        description=(
            "Answers from the documents you may read, with [n] markers pointing at `citations`, or refuses "
            "(`refused: true`) and lists the nearest documents. Every question is recorded, including ones "
            "that fail, except one refused by the rate limit (429, before any work). Send the returned "
            "`conversation_id` with a follow-up to keep its context."
        ),
        request={"application/json": AskRequestSerializer},
        responses={
            200: AnswerSerializer, **ERRORS, 429: RATE_LIMITED,
            503: OpenApiResponse(ErrorSerializer, description="Search is unavailable; the question was recorded."),
        },
        examples=[OpenApiExample("question", value={"question": "How many vacation days do I get?"},
                                 request_only=True)],
        tags=["answers"],
    )
    def post(self, request: Request) -> Response:
        body = AskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = answering.ask(
            body.validated_data["question"], principals=principals_for(request.user), user=request.user,
            conversation_id=body.validated_data.get("conversation_id"), surface="api",
        )
        return Response(result.as_dict())


class SearchView(ApiView):
    @extend_schema(
        operation_id="search",
        summary="Search passages",
        description="The best-matching passages among the documents you may read, without composing an answer.",
        request={"application/json": SearchRequestSerializer},
        responses={
            200: SearchResponseSerializer, **ERRORS, 429: RATE_LIMITED,
            503: OpenApiResponse(ErrorSerializer, description="Search is unavailable."),
        },
        examples=[OpenApiExample("query", value={"query": "on-call escalation", "mode": "hybrid", "limit": 5,
                                                 "filters": {"modified_after": "2024-01-01T00:00:00Z"}},
                                 request_only=True)],
        tags=["search"],
    )
    def post(self, request: Request) -> Response:
        body = SearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        query = data["query"].strip()
        mode = SearchMode(data["mode"])
        throttling.check_search(user=request.user)
        hits = selectors.search(query, principals=principals_for(request.user), mode=mode,
                                filters=SearchFiltersSerializer.to_filters(data.get("filters")), limit=data["limit"])
        return Response({"query": query, "mode": mode.value, "hits": [hit.as_dict() for hit in hits]})


class FeedbackView(ApiView):
    @extend_schema(
        operation_id="answer_feedback",
        summary="Give feedback on an answer",
        description=(
            "Thumbs up or down, or flag the answer for review (a flag needs a `reason`). Only the person who "
            "asked may give feedback on an answer; any other answer id is a 404."
        ),
        request={"application/json": FeedbackRequestSerializer},
        responses={
            201: FeedbackSerializer, **ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No such answer among yours."),
        },
        examples=[OpenApiExample("flag", value={"kind": "flag", "reason": "wrong", "comment": "Policy changed in May."},
                                 request_only=True)],
        tags=["answers"],
    )
    def post(self, request: Request, answer_id: uuid.UUID) -> Response:
        body = FeedbackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        feedback = answering.record_feedback(answer_id, request.user, data["kind"], data.get("reason", ""),
                                             data.get("comment", ""))
        return Response(FeedbackSerializer(feedback).data, status=status.HTTP_201_CREATED)


class ConversationsView(ApiView):
    @extend_schema(
        operation_id="conversations",
        summary="Your conversations",
        description="Your own conversations, the most recently continued first (at most 100); deleted ones never.",
        responses={200: ConversationListSerializer, 401: ERRORS[401]},
        tags=["conversations"],
    )
    def get(self, request: Request) -> Response:
        summaries = answer_selectors.conversations_of(request.user)
        return Response({"conversations": [dataclasses.asdict(summary) for summary in summaries]})


CONVERSATION_NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such conversation among yours.")


class ConversationView(ApiView):
    @extend_schema(
        operation_id="conversation",
        summary="Reopen a conversation",
        description=(
            "Its questions and answers with their sources and your votes. An answer that cited a document you "
            "may no longer read is withheld (`withheld: true`, no text, no sources), checked at the time of the "
            "request."
        ),
        responses={200: ConversationSerializer, 401: ERRORS[401], 404: CONVERSATION_NOT_FOUND},
        tags=["conversations"],
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        turns = answer_selectors.conversation_transcript(conversation_id, request.user, principals_for(request.user))
        if turns is None:
            raise NotFound(user_message="unknown conversation")
        return Response({"id": str(conversation_id), "turns": turns})

    @extend_schema(
        operation_id="conversation_rename",
        summary="Rename a conversation",
        request={"application/json": ConversationRenameSerializer},
        responses={200: ConversationRenameSerializer, **ERRORS, 404: CONVERSATION_NOT_FOUND},
        tags=["conversations"],
    )
    def patch(self, request: Request, conversation_id: uuid.UUID) -> Response:
        body = ConversationRenameSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversation = answering.rename_conversation(conversation_id, request.user, body.validated_data["title"])
        return Response({"title": conversation.title})

    @extend_schema(
        operation_id="conversation_delete",
        summary="Delete a conversation",
        description="Gone from your history for good: never listed, reopened or continued again.",
        responses={204: None, 401: ERRORS[401], 404: CONVERSATION_NOT_FOUND},
        tags=["conversations"],
    )
    def delete(self, request: Request, conversation_id: uuid.UUID) -> Response:
        answering.delete_conversation(conversation_id, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


def document_summary(document: IndexedDocument) -> dict:
    """What a source link shows: from the index entry the permission check found, plus the source's kind."""
    kind = Source.objects.filter(pk=int(document.source_id)).values_list("kind", flat=True).first() \
        if document.source_id.isdigit() else None
    return {
        "document_id": document.document_id, "title": document.title, "url": document.url,
        "source_type": source_type(document.mime_type), "mime_type": document.mime_type,
        "source_kind": kind or "",
        "modified_at": document.modified_at.isoformat() if document.modified_at else None,
        "effective_date": document.effective_date.isoformat() if document.effective_date else None,
    }


DocumentSerializer = inline_serializer("Document", {
    "document_id": serializers.CharField(),
    "title": serializers.CharField(),
    "url": serializers.CharField(help_text="Where the document lives in its source system."),
    "source_type": serializers.CharField(help_text="What kind of document it is, as citations name it (e.g. PDF)."),
    "mime_type": serializers.CharField(),
    "source_kind": serializers.CharField(help_text="The connector it came from (e.g. filesystem)."),
    "modified_at": serializers.DateTimeField(allow_null=True),
    "effective_date": serializers.DateField(allow_null=True, help_text="The date the document states it takes effect."),
})


class DocumentView(ApiView):
    @extend_schema(
        operation_id="document",
        summary="A document's source link",
        description=(
            "Title, URL, type and modification date of a document you may read now, checked against the "
            "search index's permissions at the time of the request. A document you may not read is a 404, "
            "exactly like one that does not exist."
        ),
        responses={
            200: DocumentSerializer, 401: ERRORS[401],
            404: OpenApiResponse(ErrorSerializer, description="No such document among those you may read."),
            503: OpenApiResponse(ErrorSerializer, description="Search is unavailable."),
        },
        tags=["documents"],
    )
    def get(self, request: Request, document_id: str) -> Response:
        document = selectors.readable_document(document_id, principals_for(request.user))
        audit.record(request.user, "document.view", object_type="connectors.document", object_id=document_id[:100],
                     surface="api", detail={"visible": document is not None})
        if document is None:
            raise NotFound(user_message="unknown document")
        return Response(document_summary(document))
