"""The review queue in a real browser: a Slack user asks (a signed Slack request) and flags the answer (the signed
flag modal submission); an admin signs in to the console, finds the item in the queue with its question, answer and
citations, and demotes the cited document for that question; the same question then ranks it lower, on the
embedded and on the Elasticsearch backend.

Screenshots go to var/screenshots/ (CITEWISE_SCREENSHOT_DIR to put them elsewhere).
"""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from answers.models import Answer, Feedback
from connectors import services as connectors
from connectors.models import Document
from identity.models import ExternalIdentity
from identity.selectors import principals_for
from retrieval import selectors
from retrieval.models import RankingRule
from retrieval.services import add_ranking_rule, get_backend
from tests.bot.conftest import (
    TEAM,
    SlackSender,
    button_click,
    flag_submission,
    mention,
    slack,  # noqa: F401 (the bots' Slack stand-in fixture, shared)
)
from tests.browser.conftest import assert_accessible, screenshot
from tests.console.conftest import make_user
from tests.console.test_review_queue import FILES, PARKING_QUESTION, write_corpus

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(folder, **where) -> dict[str, str]:
    source = connectors.ensure_source("filesystem", folder, name=f"corpus-{uuid.uuid4().hex[:6]}", **where)
    report = connectors.sync_source(source)
    assert (report.indexed, report.failed) == (len(FILES), 0), report.errors
    connectors.sync_permissions(source)
    return dict(Document.objects.filter(source=source).values_list("external_id", "id"))


def rank(document_id: str, user, **kwargs) -> int:
    hits = selectors.search(PARKING_QUESTION, principals=principals_for(user), limit=10, **kwargs)
    return list(dict.fromkeys(hit.document_id for hit in hits)).index(document_id)


def test_a_slack_flag_reaches_the_queue_and_a_demote_lowers_the_document_on_both_backends(
        browser, live_server, isolated_index, slack, client, tmp_path, request):
    folder = write_corpus(tmp_path / "docs")
    embedded = ingest(folder)
    alice = make_user("alice")
    make_user("auditor", is_staff=True, is_superuser=True)
    ExternalIdentity.objects.create(user=alice, principal=f"slack:{TEAM}:user:UALICE")

    # alice asks in Slack and flags the answer, each request signed with the app's signing secret.
    sender = SlackSender(client)
    assert sender.post_event(mention("UALICE", PARKING_QUESTION, ts="700.000001")).status_code == 200
    answer = Answer.objects.get()
    assert (answer.user, answer.surface, answer.refused) == (alice, "slack", False)
    cited = answer.citations[0]
    sender.post_payload(button_click("flag", str(answer.id), trigger_id="trigger-7"))
    view = slack.of("views.open")[0]["body"]["view"]
    response = sender.post_payload(flag_submission(view["private_metadata"], reason="wrong",
                                                   comment="Visitors should use the garage"))
    assert response.status_code == 200
    flag = Feedback.objects.get(kind="flag")
    before = rank(cited["document_id"], alice)

    # The admin signs in to the console and finds it in the queue.
    wait = WebDriverWait(browser, 60)
    browser.get(f"{live_server.url}/admin/console/flaggedanswer/")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys("auditor")
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    row = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#result_list tbody tr")))
    assert PARKING_QUESTION in row.text and "slack" in row.text and "Visitors should use the garage" in row.text
    screenshot(browser, "review-queue.png")
    assert_accessible(browser, "the review queue")

    row.find_element(By.CSS_SELECTOR, "th a, td a").click()
    demote = wait.until(ready.element_to_be_clickable(
        (By.CSS_SELECTOR, f'button[value="{cited["document_id"]}|demote|question"]')))
    page = browser.find_element(By.ID, "content").text
    assert PARKING_QUESTION in page and answer.text.split("[")[0].strip()[:40] in page
    assert cited["title"] in page and "Wrong or outdated" in page and "alice" in page
    screenshot(browser, "review-queue-item.png")
    assert_accessible(browser, "a review queue item")

    demote.click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), "Demoted for this question"))
    listed = browser.find_element(By.CSS_SELECTOR, ".ranking-rules li")
    assert f"Demote “{cited['title']}” for “{PARKING_QUESTION}”" in listed.text and "Undo" in listed.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", listed)
    screenshot(browser, "review-queue-after-demote.png")
    rule = RankingRule.objects.get(removed_at=None)
    assert (rule.document_id, rule.effect, rule.source_feedback_id) == (cited["document_id"], "demote", flag.id)

    # The same question now ranks the document lower on the embedded backend, where the browser's rule applies ...
    assert rank(cited["document_id"], alice) > before
    # ... and the same rule (effect and question) lowers the same file on Elasticsearch.
    request.getfixturevalue("elasticsearch_node")
    where = {"index_name": f"test-review-{uuid.uuid4().hex[:8]}", "search_backend": "elasticsearch"}
    elastic = ingest(folder, **where)
    backend = get_backend(where["index_name"], "elasticsearch")
    path = next(external_id for external_id, document_id in embedded.items() if document_id == cited["document_id"])
    es_before = rank(elastic[path], alice, backend=backend)
    add_ranking_rule(elastic[path], rule.effect, user=None, question=rule.question)
    assert rank(elastic[path], alice, backend=backend) > es_before
    assert rule.question == answer.search_query
