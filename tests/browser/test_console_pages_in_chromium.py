"""The console's main pages in a real browser, signed in as an administrator: each renders, and axe-core finds no
serious or critical WCAG 2.1 A/AA violation on it. Screenshots of each are kept."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready

from answers.models import Answer, Conversation, Feedback
from connectors.models import Document
from tests.browser.conftest import admin_signs_in, assert_accessible, screenshot
from tests.console.conftest import index_corpus, make_user, write_corpus

pytestmark = pytest.mark.django_db(transaction=True)

# (address, what the page must show, screenshot name)
PAGES = [
    ("/admin/", "Citewise console", "console-index.png"),
    ("/admin/analytics/?days=7", "Most frequent unanswered questions", "console-analytics.png"),
    ("/admin/answers/answer/", "Is there a sauna?", "console-answers.png"),
    ("/admin/audit/auditevent/", "admin.view", "console-audit-log.png"),
    ("/admin/connectors/document/{finance}/change/", "members of the group “finance”", "console-document.png"),
    ("/admin/connectors/document/{finance}/access/?user=bob", "bob cannot read it", "console-why-not.png"),
    ("/admin/auth/user/{alice}/change/", "What this user reads as", "console-user.png"),
]


def test_the_console_s_main_pages_render_and_pass_the_accessibility_check(browser, live_server, isolated_index,
                                                                          tmp_path):
    source = index_corpus(write_corpus(tmp_path / "docs"))
    finance = Document.objects.get(source=source, external_id="finance/travel-budget.md")
    alice, _ = make_user("alice"), make_user("bob")
    user = get_user_model().objects.create_user("erin", password="pw")
    conversation = Conversation.objects.create(user=user, surface="slack")
    answer = Answer.objects.create(conversation=conversation, user=user, surface="slack", question="Is there a sauna?",
                                   refused=True, status="refused", timings={"retrieve": 12.5})
    Feedback.objects.create(answer=answer, user=user, kind="flag", reason="wrong")
    wait = admin_signs_in(browser, live_server)
    for address, shown, name in PAGES:
        browser.get(live_server.url + address.format(finance=finance.pk, alice=alice.pk))
        wait.until(ready.presence_of_element_located((By.ID, "content")))
        assert shown in browser.find_element(By.TAG_NAME, "body").text, address
        screenshot(browser, name)
        assert_accessible(browser, address)
