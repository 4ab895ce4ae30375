"""Request and response bodies of the /api/v1 endpoints: validation, and the shapes the OpenAPI schema documents."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from answers.models import Feedback
from answers.services import MAX_QUESTION_CHARS
from retrieval.selectors import MAX_QUERY_CHARS
from search.types import SearchFilters, SearchMode

MAX_SEARCH_LIMIT = 50
MAX_FILTER_VALUES = 50


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of quietly turning them into text."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictUUIDField(serializers.UUIDField):
    """A UUIDField that takes only the string form (DRF would also read the integer 7 as a UUID)."""

    def to_internal_value(self, data: Any):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


# -- requests ------------------------------------------------------------------------------------


class AskRequestSerializer(serializers.Serializer):
    question = StrictCharField(max_length=MAX_QUESTION_CHARS, help_text=f"1 to {MAX_QUESTION_CHARS} characters.")
    conversation_id = StrictUUIDField(
        required=False, allow_null=True,
        help_text="Continue a conversation you started (from an earlier answer's conversation_id); "
                  "leave out to start a new one.",
    )


class SearchFiltersSerializer(serializers.Serializer):
    source_ids = serializers.ListField(child=StrictCharField(max_length=200), required=False,
                                       max_length=MAX_FILTER_VALUES, help_text="Only these sources.")
    mime_types = serializers.ListField(child=StrictCharField(max_length=200), required=False,
                                       max_length=MAX_FILTER_VALUES, help_text="Only these MIME types.")
    modified_after = serializers.DateTimeField(required=False, allow_null=True,
                                               help_text="Modified on or after (ISO 8601; UTC if no offset).")
    modified_before = serializers.DateTimeField(required=False, allow_null=True,
                                                help_text="Modified before (ISO 8601; UTC if no offset).")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("modified_after"), attrs.get("modified_before")
        if after and before and after >= before:
            raise serializers.ValidationError({"modified_before": "must be later than modified_after"})
        return attrs

    @staticmethod
    def to_filters(data: dict[str, Any] | None) -> SearchFilters:
        data = data or {}
        return SearchFilters(
            source_ids=tuple(data.get("source_ids") or ()), mime_types=tuple(data.get("mime_types") or ()),
            modified_after=data.get("modified_after"), modified_before=data.get("modified_before"),
        )


class SearchRequestSerializer(serializers.Serializer):
    query = StrictCharField(max_length=MAX_QUERY_CHARS, help_text=f"1 to {MAX_QUERY_CHARS} characters.")
    mode = serializers.ChoiceField(choices=[m.value for m in SearchMode], default=SearchMode.HYBRID.value,
                                   help_text="bm25 (keywords), dense (meaning) or hybrid (both, fused).")
    limit = serializers.IntegerField(min_value=1, max_value=MAX_SEARCH_LIMIT, default=10)
    filters = SearchFiltersSerializer(required=False, allow_null=True)


class FeedbackRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Feedback.Kind.choices)
    reason = serializers.ChoiceField(choices=Feedback.Reason.choices, required=False, allow_blank=True,
                                     help_text="Required when kind is flag.")
    comment = StrictCharField(max_length=4000, required=False, allow_blank=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["kind"] == Feedback.Kind.FLAG and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": "A flag needs a reason."})
        return attrs


# -- responses (documented in the schema; the views return the service's own dicts) ---------------


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in words meant for the person asking.")
    code = serializers.CharField(help_text="A stable identifier of the error, e.g. invalid_question, rate_limited, "
                                           "search_unavailable, not_found.")
    # Invalid input also names each field with its problems: {"question": ["This field may not be blank."]}.


class CitationSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="The n of the [n] markers in the answer text.")
    document_id = serializers.CharField()
    chunk_id = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField(help_text="Link to the document, to its section where possible.")
    source_type = serializers.CharField(help_text="What kind of document it is: Markdown, PDF, Web page…")
    mime_type = serializers.CharField()
    modified_at = serializers.DateTimeField(allow_null=True, help_text="When the document last changed.")
    section = serializers.CharField(allow_blank=True, help_text="Heading path, joined with ' > '.")
    snippet = serializers.CharField(help_text="The start of the cited passage.")
    effective_date = serializers.DateField(allow_null=True, help_text="The date the document states it takes effect.")
    superseded_by = serializers.CharField(allow_blank=True, help_text="Title of a newer edition you may read, if any.")
    date_label = serializers.CharField(allow_blank=True, help_text="The date to show: 'effective YYYY-MM-DD' when "
                                                                   "the document states one, else 'modified …'.")
    section_ordinal = serializers.IntegerField(
        allow_null=True, help_text="The section of the document the passage is in: /documents/{document_id}/open"
                                   "?section=N opens the document there.")


class AnswerSerializer(serializers.Serializer):
    answer_id = serializers.UUIDField(help_text="Give feedback on this answer at /api/v1/answers/{answer_id}/feedback.")
    conversation_id = serializers.UUIDField(help_text="Send back as conversation_id to ask a follow-up.")
    question = serializers.CharField()
    search_query = serializers.CharField(help_text="The question as searched, rewritten with the conversation.")
    corrected_query = serializers.CharField(
        allow_blank=True, help_text="When misspelt words were corrected before searching: the query searched for "
                                    "(show it, e.g. “Searched for …”); empty otherwise.")
    answer = serializers.CharField(help_text="The answer text with [n] citation markers, or a refusal: paragraphs, "
                                             "'- ' / '1. ' lists, pipe tables and fenced code (docs/answering.md).")
    answer_html = serializers.CharField(help_text=(
        "The same answer as HTML (<p>, <ul>/<ol>, <table>, <pre><code>), every piece of document text escaped; "
        "its only links are the [n] markers, to #src-{answer_id}-{n}."))
    refused = serializers.BooleanField(help_text="True when the sources you may read do not answer the question.")
    citations = CitationSerializer(many=True)
    nearest_documents = CitationSerializer(many=True, help_text="When refused: the nearest documents, not answers.")
    composer = serializers.CharField()
    fallback_reason = serializers.CharField(allow_blank=True)
    timings_ms = serializers.DictField(child=serializers.FloatField())
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.FloatField()
    notice = serializers.CharField(allow_blank=True, help_text=(
        "A sentence for the asker about how this answer was made, e.g. that today's LLM budget is spent and it "
        "quotes the documents directly; empty otherwise."))


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.CharField()
    document_id = serializers.CharField()
    source_id = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField()
    mime_type = serializers.CharField()
    modified_at = serializers.DateTimeField(allow_null=True)
    heading_path = serializers.ListField(child=serializers.CharField())
    section_ordinal = serializers.IntegerField()
    text = serializers.CharField()
    score = serializers.FloatField()
    bm25_rank = serializers.IntegerField(allow_null=True)
    dense_rank = serializers.IntegerField(allow_null=True)
    highlight = serializers.CharField(help_text="HTML: the text, escaped, with matches in <em>.")
    effective_date = serializers.DateField(allow_null=True, help_text="The date the document states it takes effect.")
    superseded_by = serializers.CharField(allow_blank=True, help_text="Title of a newer edition you may read, if any.")


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.CharField()
    hits = SearchHitSerializer(many=True)


class FeedbackSerializer(serializers.ModelSerializer):
    answer_id = serializers.UUIDField(source="answer.id")

    class Meta:
        model = Feedback
        fields = ["id", "answer_id", "kind", "reason", "comment", "created_at"]


class ConversationSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Reopen it at /api/v1/conversations/{id}; send it as conversation_id to "
                                         "continue it.")
    title = serializers.CharField(help_text="Your own name for it, else its first question.")
    renamed = serializers.BooleanField(help_text="Whether the title is a name you gave it.")
    surface = serializers.CharField(help_text="Where it was asked: web, api, slack, teams.")
    turns = serializers.IntegerField()
    last_asked_at = serializers.DateTimeField()


class ConversationListSerializer(serializers.Serializer):
    conversations = ConversationSummarySerializer(many=True)


class TurnSerializer(serializers.Serializer):
    answer_id = serializers.UUIDField()
    question = serializers.CharField()
    answer = serializers.CharField()
    answer_html = serializers.CharField(allow_blank=True)
    refused = serializers.BooleanField()
    withheld = serializers.BooleanField(help_text="True when the answer cited documents you may no longer read: "
                                                  "its text and sources are not shown again.")
    citations = CitationSerializer(many=True)
    vote = serializers.CharField(allow_blank=True, help_text="Your vote on it: up, down or empty.")
    flagged = serializers.BooleanField(help_text="Whether you flagged it for review.")
    asked_at = serializers.DateTimeField()


class ConversationSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    turns = TurnSerializer(many=True)


class ConversationRenameSerializer(serializers.Serializer):
    title = StrictCharField(max_length=200, help_text="A name of your own for it in your history.")
