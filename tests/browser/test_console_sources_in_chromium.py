"""The console's sources in a real browser: an admin adds a folder through the typed form, tests the connection,
saves, syncs, and sees the run; then the web chat cites the restricted document to the one employee it is granted to
and not to another. And a source that cannot be read shows as failing on the freshness dashboard.

Screenshots go to var/screenshots/ (CITEWISE_SCREENSHOT_DIR to put them elsewhere).
"""

from __future__ import annotations

import shutil

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from connectors.models import Source, SyncRun
from tests.browser.conftest import admin_signs_in, assert_accessible, screenshot
from tests.browser.test_documents_in_chromium import sign_in
from tests.console.conftest import BUDGET_QUESTION, make_user, write_corpus, write_manifest

pytestmark = pytest.mark.django_db(transaction=True)


def ask(browser, wait: WebDriverWait, question: str) -> str:
    """The question asked in the web chat; the finished turn's text."""
    turns = len(browser.find_elements(By.CSS_SELECTOR, "#thread .turn"))
    browser.find_element(By.ID, "question").send_keys(question)
    browser.find_element(By.ID, "ask-button").click()
    # Read in one script: the turn is re-rendered as the answer streams, so a held element could go stale.
    finished = ("const turn = document.querySelectorAll('#thread .turn')[arguments[0]];"
                "return turn && turn.querySelector('.feedback button') ? turn.innerText : null;")
    return wait.until(lambda driver: driver.execute_script(finished, turns))


def test_an_admin_adds_tests_saves_and_syncs_a_folder_and_only_its_reader_gets_it_cited(
        browser, live_server, isolated_index, tmp_path):
    folder = write_corpus(tmp_path / "docs")
    write_manifest(folder, finance_members=[], finance_readers=["email:alice@corp.example"])
    make_user("alice")
    make_user("bob")
    wait = admin_signs_in(browser, live_server)

    browser.get(f"{live_server.url}/admin/connectors/source/add/")
    wait.until(ready.element_to_be_clickable((By.LINK_TEXT, "Files on disk"))).click()
    wait.until(ready.presence_of_element_located((By.NAME, "name"))).send_keys("Finance share")
    browser.find_element(By.NAME, "location").send_keys(str(folder))
    assert browser.find_element(By.NAME, "config__public").get_attribute("type") == "checkbox"
    screenshot(browser, "console-source-typed-form.png")
    assert_accessible(browser, "the typed source form")
    browser.find_element(By.ID, "test-connection").click()
    check = wait.until(ready.presence_of_element_located((By.ID, "connection-check")))
    assert "Connected: found 2 items" in check.text and not Source.objects.exists()
    screenshot(browser, "console-source-connection-tested.png")

    browser.find_element(By.NAME, "_continue").click()  # Save and continue editing: the source's own page
    sync_now = wait.until(ready.element_to_be_clickable((By.ID, "action-sync")))
    source = Source.objects.get(name="Finance share")
    assert source.location == str(folder.resolve()) and source.config == {}
    sync_now.click()
    # The page before showed a message too ("added successfully"): wait for the sync's.
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist"), "sync of Finance share"))
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert "Full sync of Finance share: succeeded" in message and "added 2" in message
    run = browser.find_element(By.CSS_SELECTOR, "#recent-runs tbody tr")
    assert run.text.split()[2:8] == ["Full", "Succeeded", "console", "2", "2", "0"], run.text
    assert SyncRun.objects.get(source=source).added == 2
    screenshot(browser, "console-source-synced.png")
    assert_accessible(browser, "a source's page with its runs")

    browser.delete_all_cookies()
    wait = sign_in(browser, live_server, "alice")
    answered = ask(browser, wait, BUDGET_QUESTION)
    assert "40,000" in answered and browser.find_elements(By.CSS_SELECTOR, "#thread a.cite")
    assert "Travel budget" in browser.find_element(By.CSS_SELECTOR, "#thread ol.sources").text
    screenshot(browser, "console-source-alice-cited.png")

    browser.delete_all_cookies()
    wait = sign_in(browser, live_server, "bob")
    refused = ask(browser, wait, BUDGET_QUESTION)
    assert "40,000" not in refused and "Travel budget" not in refused
    screenshot(browser, "console-source-bob-not-cited.png")


def test_a_source_that_cannot_be_read_shows_as_failing_on_the_freshness_dashboard(
        browser, live_server, isolated_index, tmp_path):
    folder = write_corpus(tmp_path / "share")
    source = Source.objects.create(name="Unmounted share", kind="filesystem", location=str(folder))
    shutil.rmtree(folder)  # the share is gone
    wait = admin_signs_in(browser, live_server)
    browser.get(f"{live_server.url}/admin/connectors/source/{source.pk}/change/")
    wait.until(ready.element_to_be_clickable((By.ID, "action-sync"))).click()
    wait.until(ready.text_to_be_present_in_element((By.CSS_SELECTOR, "ul.messagelist li.error"), "failed"))
    assert "does not exist" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.error").text

    browser.find_element(By.LINK_TEXT, "Freshness").click()
    row = wait.until(ready.presence_of_element_located((By.ID, f"freshness-{source.pk}")))
    badge = row.find_element(By.CSS_SELECTOR, ".health-badge")
    assert badge.text == "Failing" and "The last content run failed." in row.text
    screenshot(browser, "console-freshness-failing.png")
    assert_accessible(browser, "the freshness dashboard")
    browser.get(f"{live_server.url}/admin/connectors/source/")
    wait.until(ready.presence_of_element_located((By.ID, "result_list")))
    assert_accessible(browser, "the sources list")
    browser.get(f"{live_server.url}/admin/connectors/syncrun/")
    wait.until(ready.presence_of_element_located((By.ID, "result_list")))
    assert_accessible(browser, "the sync runs list")
