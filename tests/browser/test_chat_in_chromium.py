"""The web chat in a real browser: sign in, ask, see the streamed answer with numbered sources, give feedback."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from answers.models import Answer, Feedback
from connectors import services as connector_services

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in_to_the_chat(browser, live_server) -> WebDriverWait:
    """A new employee, erin, signed in to the web chat; the wait the test goes on with."""
    get_user_model().objects.create_user("erin", password="a long demo password")
    wait = WebDriverWait(browser, 60)
    browser.get(f"{live_server.url}/chat/")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys("erin")
    browser.find_element(By.NAME, "password").send_keys("a long demo password")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return wait


GYM = "# Gym\n\n## Opening hours\n\nThe rooftop gym opens at six in the morning and closes at ten at night.\n"


def public_documents(tmp_path, files: dict[str, str]) -> None:
    """Markdown files, readable by everyone, synced into the test's index."""
    (tmp_path / "docs").mkdir()
    for name, text in files.items():
        (tmp_path / "docs" / name).write_text(text)
    connector_services.sync_source(connector_services.ensure_source("filesystem", tmp_path / "docs",
                                                                    config={"public": True}))


def test_an_employee_signs_in_asks_and_rates_the_answer(browser, live_server, isolated_index, tmp_path, settings):
    # Two questions a day for this test (a key space of its own): the third shows the rate-limit message.
    settings.RATELIMIT_CACHE_PREFIX = f"citewise-test-rl-{uuid.uuid4().hex}:"
    settings.CITEWISE = settings.CITEWISE.replace(ask_rate_per_user="2/d")
    public_documents(tmp_path, {"gym.md": GYM, "parking.md": "# Parking\n\nVisitor parking is on level minus two.\n"})
    wait = sign_in_to_the_chat(browser, live_server)

    wait.until(ready.presence_of_element_located((By.ID, "question"))).send_keys("When does the gym open?")
    browser.find_element(By.ID, "ask-button").click()
    marker = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#thread a.cite")))
    assert marker.text == "[1]"
    # The finished answer replaces the streamed text with the server's structured HTML.
    marker = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#thread .answer.formatted p a.cite")))
    assert marker.text == "[1]" and marker.get_attribute("href").endswith("-1")
    sources = browser.find_elements(By.CSS_SELECTOR, "#thread ol.sources li")
    assert sources and "Gym" in sources[0].text
    assert "six in the morning" in browser.find_element(By.ID, "thread").text

    browser.find_element(By.CSS_SELECTOR, "#thread button[title=Helpful]").click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#thread .feedback .status"), "Thanks"))
    assert Feedback.objects.get().kind == "up"

    # A follow-up is posted with the conversation the first answer started.
    browser.find_element(By.ID, "question").send_keys("And when does it close?")
    browser.find_element(By.ID, "ask-button").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#thread .turn .feedback button")) >= 6)
    first, follow_up = Answer.objects.order_by("created_at")
    assert (first.user.username, first.surface, first.question) == ("erin", "web", "When does the gym open?")
    assert follow_up.conversation_id == first.conversation_id
    assert "ten at night" in browser.find_elements(By.CSS_SELECTOR, "#thread .turn")[1].text

    # Past the limit: a readable message in the turn, the form usable again, nothing recorded.
    browser.find_element(By.ID, "question").send_keys("Is there a sauna?")
    browser.find_element(By.ID, "ask-button").click()
    error = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#thread .turn:nth-child(3) .status.error")))
    assert "too quickly" in error.text and "wait" in error.text
    assert browser.find_element(By.ID, "ask-button").is_enabled() and Answer.objects.count() == 2
    browser.save_screenshot(str(tmp_path / "chat.png"))


def test_a_misspelt_question_shows_what_was_searched_for(browser, live_server, isolated_index, tmp_path):
    public_documents(tmp_path, {"gym.md": GYM})
    wait = sign_in_to_the_chat(browser, live_server)

    wait.until(ready.presence_of_element_located((By.ID, "question"))).send_keys("When does the rooftop gymm open?")
    browser.find_element(By.ID, "ask-button").click()
    corrected = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#thread .turn .corrected")))
    assert corrected.text == "Searched for When does the rooftop gym open?"
    assert corrected.find_element(By.TAG_NAME, "em").text == "When does the rooftop gym open?"
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#thread a.cite")))
    assert "six in the morning" in browser.find_element(By.ID, "thread").text

    browser.find_element(By.ID, "question").send_keys("When does the rooftop gym close?")
    browser.find_element(By.ID, "ask-button").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#thread .turn .feedback button")) >= 6)
    assert not browser.find_elements(By.CSS_SELECTOR, "#thread .turn")[1].find_element(
        By.CSS_SELECTOR, ".corrected").is_displayed()


HANDBOOK = {
    "pto.md": """# PTO Policy

## How much PTO you earn

Your accrual rate depends on your length of service.

| Years of service | Days per year |
| --- | --- |
| Less than 3 years | 15 days |
| 3 to 6 years | 20 days |
| More than 6 years | 25 days |

## Carrying PTO over

You may carry over up to 40 hours of unused PTO into the next calendar year; anything above that is forfeited.
""",
    "rollback.md": """# Mission Service Rollback

## Rolling back

If a release of the mission service misbehaves, roll it back with these commands:

```
kubectl argo rollouts undo mission-service -n missions
kubectl argo rollouts status mission-service -n missions
```
""",
    "parking.md": """# Visitor Parking

Visitors park on level P2 of the garage and register at the front desk on arrival.
""",
}


def test_tables_and_code_render_as_such_and_a_follow_up_keeps_its_topic_until_the_topic_changes(
        browser, live_server, isolated_index, tmp_path):
    public_documents(tmp_path, HANDBOOK)
    wait = sign_in_to_the_chat(browser, live_server)

    def ask(question: str, turn: int):
        browser.find_element(By.ID, "question").send_keys(question)
        browser.find_element(By.ID, "ask-button").click()
        selector = f"#thread .turn:nth-child({turn}) .answer.formatted, #thread .turn:nth-child({turn}) .answer.refused"
        return wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, selector)))

    wait.until(ready.presence_of_element_located((By.ID, "question")))
    table_answer = ask("how many pto days do i get", 1)
    header = [cell.text for cell in table_answer.find_elements(By.CSS_SELECTOR, "table thead th")]
    rows = [[cell.text for cell in row.find_elements(By.CSS_SELECTOR, "td")]
            for row in table_answer.find_elements(By.CSS_SELECTOR, "table tbody tr")]
    assert header == ["Years of service", "Days per year"]
    assert ["Less than 3 years", "15 days"] in rows and ["More than 6 years", "25 days"] in rows

    follow_up = ask("and can i carry them over?", 2)
    assert "40 hours" in follow_up.text
    assert Answer.objects.order_by("created_at")[1].search_query != "and can i carry them over?"

    switched = ask("where do visitors park", 3)
    assert "P2" in switched.text
    third = Answer.objects.order_by("created_at")[2]
    assert third.search_query == "where do visitors park" and third.citations[0]["title"] == "Visitor Parking"

    code_answer = ask("how do i roll back the mission service", 4)
    code = code_answer.find_element(By.CSS_SELECTOR, "pre code")
    assert code.text.splitlines() == ["kubectl argo rollouts undo mission-service -n missions",
                                      "kubectl argo rollouts status mission-service -n missions"]


NARROW = {"width": 360, "height": 740, "deviceScaleFactor": 2, "mobile": True}


def small_controls(browser) -> list[str]:
    """Visible buttons, selects and text fields of the chat smaller than 44 × 44 px, described."""
    return browser.execute_script("""
        return [...document.querySelectorAll('button, select, input, summary')]
          .filter((node) => node.offsetParent !== null)
          .map((node) => [node, node.getBoundingClientRect()])
          .filter(([, box]) => box.height < 44 || (box.width < 44 && box.width > 0))
          .map(([node, box]) => `${node.tagName} ${node.textContent.trim() || node.getAttribute('aria-label')}: `
                                + `${box.width}x${box.height}`);
    """)


def test_history_reopens_renames_and_deletes_a_conversation_and_the_vote_can_be_changed_at_360_px(
        browser, live_server, isolated_index, tmp_path):
    from tests.browser.conftest import assert_accessible, screenshot

    public_documents(tmp_path, {"gym.md": GYM})
    wait = sign_in_to_the_chat(browser, live_server)
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", NARROW)
    wait.until(ready.presence_of_element_located((By.ID, "question"))).send_keys("When does the gym open?")
    browser.find_element(By.ID, "ask-button").click()
    up = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#thread button[title=Helpful]")))
    down = browser.find_element(By.CSS_SELECTOR, "#thread button[title='Not helpful']")

    # The vote is shown, and changed by the other button: one vote on record, the latest.
    up.click()
    wait.until(lambda driver: up.get_attribute("aria-pressed") == "true")
    down.click()
    wait.until(lambda driver: down.get_attribute("aria-pressed") == "true")
    assert up.get_attribute("aria-pressed") == "false"
    assert list(Feedback.objects.values_list("kind", flat=True)) == ["down"]
    assert browser.find_element(By.CSS_SELECTOR, "#thread .feedback button[aria-expanded]").is_enabled()  # Flag…

    # 360 px wide: nothing scrolls sideways and every control is a thumb's size.
    width, inner = browser.execute_script("return [document.scrollingElement.scrollWidth, window.innerWidth];")
    assert inner == 360 and width <= inner, (width, inner)
    panel = browser.find_element(By.ID, "history-panel")
    if panel.get_attribute("open") is None:  # collapsed on a phone-sized first load, open on a wide one
        browser.find_element(By.CSS_SELECTOR, "#history-panel summary").click()
    item = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#history-list li .open")))
    assert item.text == "When does the gym open?" and panel.get_attribute("open") is not None
    assert small_controls(browser) == []
    screenshot(browser, "chat-history-360.png")
    assert_accessible(browser, "the chat with its history")

    # A new conversation, then the old one reopened from the history: its answer, sources and vote come back.
    browser.find_element(By.ID, "new-conversation").click()
    assert browser.find_elements(By.CSS_SELECTOR, "#thread .turn") == []
    browser.find_element(By.CSS_SELECTOR, "#history-list li .open").click()
    answer = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#thread .turn .answer.formatted")))
    assert "six in the morning" in answer.text
    assert browser.find_element(By.CSS_SELECTOR, "#thread ol.sources li").text.startswith("Gym")
    assert browser.find_element(By.CSS_SELECTOR, "#thread button[title='Not helpful']").get_attribute(
        "aria-pressed") == "true"
    assert browser.find_element(By.CSS_SELECTOR, "#history-list li .open").get_attribute("aria-current") == "true"

    # Renamed in place, then deleted after confirming.
    browser.find_element(By.CSS_SELECTOR, "#history-list li button[title=Rename]").click()
    field = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, "#history-list input")))
    field.clear()
    field.send_keys("Gym hours\n")
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "#history-list li .open"), "Gym hours"))
    browser.find_element(By.CSS_SELECTOR, "#history-list li button[title=Delete]").click()
    browser.switch_to.alert.accept()
    wait.until(ready.text_to_be_present_in_element((By.ID, "history-status"), "No conversations yet."))
    assert browser.find_elements(By.CSS_SELECTOR, "#thread .turn") == []
    assert Answer.objects.get().conversation.deleted_at is not None
