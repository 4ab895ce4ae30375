"""Documents from the chat in a real browser: a citation opens the built-in viewer at the cited section, someone
who may not read the document gets a 404 for the same address, the phone-sized layout never scrolls sideways, and
signing out works.

Screenshots go to var/screenshots/ (CITEWISE_SCREENSHOT_DIR to put them elsewhere, e.g. a CI artifacts folder).
"""

from __future__ import annotations

import json

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from connectors import services as connector_services
from tests.browser.conftest import assert_accessible, screenshot
from tests.console.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True}

FILLER = ("Every new colleague receives a laptop, a badge and a welcome pack on their first morning; the office "
          "manager walks them through the building, the fire exits and the quiet rooms before lunch.")
HANDBOOK = "\n\n".join([
    "# Staff handbook",
    "## Welcome", *[FILLER] * 6,
    "## Leave", "| Years of service | Days per year | Notes |\n| --- | --- | --- |\n"
                "| Less than 3 years | 15 days | Accrues monthly from the first day of employment onwards |\n"
                "| More than 6 years | 25 days | Carry-over of up to five days into the next calendar year |",
    "## Lockers", *[FILLER.replace("laptop", "locker")] * 5,
    "## Gym", "The rooftop gym opens at six in the morning and closes at ten at night.",
    "## Parking", "Visitor parking is on level minus two; /srv/handbooks/facilities/parking/very-long-file-name-without"
                  "-any-spaces-that-could-break-a-narrow-layout.md says so too.",
]) + "\n"


def sign_in(browser, live_server, username: str) -> WebDriverWait:
    wait = WebDriverWait(browser, 60)
    browser.get(f"{live_server.url}/chat/")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ready.presence_of_element_located((By.ID, "question")))
    return wait


def no_sideways_scroll(browser) -> tuple[int, int]:
    return tuple(browser.execute_script(
        "return [document.scrollingElement.scrollWidth, window.innerWidth];"))


def on_screen(browser, element) -> bool:
    top, bottom, height = browser.execute_script(
        "const box = arguments[0].getBoundingClientRect(); return [box.top, box.bottom, window.innerHeight];", element)
    return 0 <= top < height and bottom <= height


def on_a_phone(browser) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)


def test_a_citation_opens_the_viewer_at_its_section_for_readers_only(browser, live_server, isolated_index,
                                                                     tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "handbook.md").write_text(HANDBOOK)
    (folder / ".citewise-acl.json").write_text(json.dumps({
        "groups": {"group:staff": ["email:erin@corp.example"]},
        "rules": [{"paths": ["*"], "principals": ["group:staff"]}]}))
    make_user("erin")
    make_user("mallory")
    source = connector_services.ensure_source("filesystem", folder)
    connector_services.sync_source(source)
    connector_services.sync_permissions(source)

    wait = sign_in(browser, live_server, "erin")
    assert browser.find_element(By.ID, "signed-in-user").text == "erin"
    assert not browser.find_elements(By.LINK_TEXT, "Console")  # not staff
    browser.find_element(By.ID, "question").send_keys("When does the rooftop gym open?")
    browser.find_element(By.ID, "ask-button").click()
    link = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#thread ol.sources li a")))
    assert "/documents/" in link.get_attribute("href") and "/open?section=" in link.get_attribute("href")
    chat_tab = browser.current_window_handle
    link.click()  # a new tab, as every source link opens
    wait.until(lambda driver: len(driver.window_handles) == 2)
    browser.switch_to.window(next(handle for handle in browser.window_handles if handle != chat_tab))

    cited = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "article section.cited")))
    viewer_url = browser.current_url
    assert "#section-" in viewer_url and cited.get_attribute("id") == viewer_url.rsplit("#", 1)[1]
    assert "rooftop gym opens at six" in cited.text and cited.find_element(By.TAG_NAME, "h2").text == "Gym"
    # Scrolled to it, highlighted: the section is on screen although it is far down the page.
    assert on_screen(browser, cited)
    assert browser.execute_script("return document.querySelector(':target') === arguments[0]", cited)
    assert browser.execute_script("return document.scrollingElement.scrollTop") > 0
    background = browser.execute_script("return getComputedStyle(arguments[0]).backgroundColor", cited)
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")
    screenshot(browser, "viewer-at-cited-section.png")
    assert_accessible(browser, "the document viewer")

    # A phone: neither the viewer nor the chat (with its answer and sources) scrolls sideways.
    on_a_phone(browser)
    browser.get("about:blank")
    browser.get(viewer_url.split("#", 1)[0])  # ?section=N alone, as a hand-edited link might say it
    cited = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "article section.cited")))
    scroll_width, inner_width = no_sideways_scroll(browser)
    assert inner_width == 390 and scroll_width <= inner_width, (scroll_width, inner_width)
    assert on_screen(browser, cited)
    screenshot(browser, "viewer-390x844.png")
    browser.close()
    browser.switch_to.window(chat_tab)
    on_a_phone(browser)
    browser.find_element(By.ID, "question").send_keys("How many leave days do I get after six years?")
    browser.find_element(By.ID, "ask-button").click()
    wait.until(lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#thread .turn .feedback button")) >= 6)
    scroll_width, inner_width = no_sideways_scroll(browser)
    assert inner_width == 390 and scroll_width <= inner_width, (scroll_width, inner_width)
    screenshot(browser, "chat-390x844.png")
    assert_accessible(browser, "the chat with an answer")

    # Sign out from the header: back at the sign-in page, and the chat asks to sign in again.
    browser.find_element(By.ID, "sign-out").click()
    wait.until(ready.presence_of_element_located((By.NAME, "username")))
    browser.get(f"{live_server.url}/chat/")
    wait.until(ready.presence_of_element_located((By.NAME, "username")))
    assert "/accounts/login/" in browser.current_url

    # Someone who may not read the handbook: the same address is a plain 404, nothing of the document shown.
    sign_in(browser, live_server, "mallory")
    browser.get(viewer_url)
    heading = wait.until(ready.presence_of_element_located((By.TAG_NAME, "h1")))
    assert heading.text == "Page not found"
    assert "rooftop" not in browser.page_source and "Staff handbook" not in browser.page_source
    screenshot(browser, "viewer-not-found.png")
    assert_accessible(browser, "the not-found page")
