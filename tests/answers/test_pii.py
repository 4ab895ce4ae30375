"""Personal data never reaches an external LLM: the question, the conversation and the passages go out with
placeholders; the asker gets the answer with the values back. Values are validated, not matched by shape, so the
numbers a question is usually about (dates, prices, versions, order numbers) pass through untouched."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from answers.llm.pii import Redactor
from answers.services import ask
from connectors import services as connector_services
from tests.standins import cohere as cohere_api
from tests.standins import openai as openai_api

pytestmark = pytest.mark.django_db

HELPDESK = ("# IT helpdesk\n\nThe IT helpdesk answers at help.desk@corp.example and on +1 415-555-2671 from eight to "
            "six. Refunds for the old laptop go to IBAN DE89 3704 0044 0532 0130 00.\n")
SENSITIVE = ["help.desk@corp.example", "415-555-2671", "DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111",
             "123-45-6789", "carol@corp.example"]


def test_each_kind_is_found_validated_and_restored():
    redactor = Redactor("US")
    text = ("Mail Help.Desk@corp.example or help.desk@corp.example, call (415) 555-2671 or +1 415 555 2671; card "
            "4111 1111 1111 1111; IBAN DE89 3704 0044 0532 0130 00; SSN 123-45-6789.")
    redacted = redactor.redact(text)
    assert redacted == ("Mail [EMAIL_1] or [EMAIL_1], call [PHONE_1] or [PHONE_1]; card [CARD_1]; IBAN [IBAN_1]; "
                        "SSN [NATIONAL_ID_1].")
    assert redactor.restore(redacted) == text.replace("help.desk@corp.example", "Help.Desk@corp.example").replace(
        "+1 415 555 2671", "(415) 555-2671")  # one value, one placeholder: it comes back as first written
    assert redactor.counts == {"EMAIL": 2, "PHONE": 2, "CARD": 1, "IBAN": 1, "NATIONAL_ID": 1}


@pytest.mark.parametrize("text", [
    "The policy took effect on 2025-01-15 and costs $85 per day.",
    "Upgrade to v1.2.3 before build 20250115.",
    "Order 4111 1111 1111 1112 failed the check digit.",  # not a valid card number
    "IBAN DE89 3704 0044 0532 0130 01 has a wrong checksum.",
    "SSN 000-12-3456 and 666-12-3456 are never issued.",
    "Room 415 on floor 5, ISO 27001, ticket #5552671.",
])
def test_numbers_that_are_not_personal_data_pass_through(text):
    assert Redactor("US").redact(text) == text


def test_placeholders_moved_spans_follow_the_restored_text():
    redactor = Redactor("US")
    redacted = redactor.redact("Write to a@corp.example and b@corp.example.")
    assert redacted == "Write to [EMAIL_1] and [EMAIL_2]."
    text, spans = redactor.restore_with_spans(redacted, [(23, 32, (1,))])  # "[EMAIL_2]"
    assert text[spans[0][0]:spans[0][1]] == "b@corp.example" and spans[0][2] == (1,)


@pytest.fixture
def helpdesk(tmp_path, isolated_index):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "helpdesk.md").write_text(HELPDESK)
    connector_services.sync_source(connector_services.ensure_source("filesystem", folder, config={"public": True}))
    return get_user_model().objects.create_user("carol", "carol@corp.example", "pw")


@pytest.fixture
def openai_llm(settings):
    with openai_api.OpenAIStandIn() as server:
        server.always(openai_api.CHAT_COMPLETIONS, openai_api.grounded)
        settings.CITEWISE = settings.CITEWISE.replace(composer="openai", openai_base_url=f"{server.url}/v1",
                                                      openai_api_key="test-key", openai_model="gpt-test",
                                                      llm_max_retries=0)
        yield server


def sent(server, route: str) -> str:
    return "\n".join(json.dumps(request.json) for request in server.requests_to(route))


def test_an_openai_compatible_model_gets_placeholders_and_the_asker_gets_the_values(helpdesk, openai_llm):
    question = ("When does the IT helpdesk answer, from eight to six? My card 4111 1111 1111 1111 and SSN 123-45-6789 "
                "are on file.")
    result = ask(question, principals=frozenset(), user=helpdesk, surface="api")
    outgoing = sent(openai_llm, openai_api.CHAT_COMPLETIONS)
    assert not any(value in outgoing for value in SENSITIVE), outgoing
    assert "[EMAIL_1]" in outgoing and "[PHONE_1]" in outgoing and "[CARD_1]" in outgoing
    assert not result.refused and result.composer == "openai"
    # The model quoted the passage with its placeholders; the answer has the helpdesk's real address back.
    assert "help.desk@corp.example" in result.text and "[EMAIL_1]" not in result.text
    assert result.citations and result.citations[0].title == "IT helpdesk"

    follow_up = ask("And what is their email help.desk@corp.example for?", principals=frozenset(), user=helpdesk,
                    conversation_id=result.conversation_id, surface="api")
    assert follow_up.answer_id
    assert not any(value in sent(openai_llm, openai_api.CHAT_COMPLETIONS) for value in SENSITIVE)


def test_cohere_gets_placeholders_in_its_documents_too(helpdesk, settings):
    with cohere_api.CohereStandIn() as server:
        server.always(cohere_api.CHAT, cohere_api.grounded)
        settings.CITEWISE = settings.CITEWISE.replace(composer="cohere", cohere_base_url=server.url,
                                                      cohere_api_key="test-key", llm_max_retries=0)
        result = ask("When does the IT helpdesk answer, from eight to six?", principals=frozenset(), user=helpdesk,
                     surface="api")
        outgoing = sent(server, cohere_api.CHAT)
    assert not any(value in outgoing for value in SENSITIVE) and "[EMAIL_1]" in outgoing
    assert not result.refused and "help.desk@corp.example" in result.text


def test_turned_off_the_values_go_out_as_written(helpdesk, openai_llm, settings):
    settings.CITEWISE = settings.CITEWISE.replace(pii_redaction=False)
    ask("How do I reach the IT helpdesk?", principals=frozenset(), user=helpdesk, surface="api")
    assert "help.desk@corp.example" in sent(openai_llm, openai_api.CHAT_COMPLETIONS)
