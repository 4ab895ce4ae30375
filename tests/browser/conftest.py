"""Headless Chromium for the browser tests (Selenium with the system's chromium and chromedriver), the screenshots
they keep and the accessibility check they run (axe-core, installed by scripts/install-system.sh)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
# CI keeps this folder as an artifact (.ci/run points CITEWISE_SCREENSHOT_DIR at it).
SCREENSHOTS = Path(os.environ.get("CITEWISE_SCREENSHOT_DIR") or REPO / "var" / "screenshots")
AXE_JS = Path(os.environ.get("CITEWISE_CACHE") or REPO / ".cache") / "axe-core" / "node_modules" / "axe-core" / "axe.min.js"
# What WCAG 2.1 AA asks, as axe tags it; best practices beyond that are reported by axe but not failed here.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def screenshot(browser: webdriver.Chrome, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    browser.save_screenshot(str(path))
    return path


def accessibility_violations(browser: webdriver.Chrome) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now, serious or critical ones only."""
    if not AXE_JS.is_file():
        raise FileNotFoundError(f"{AXE_JS} is missing: run scripts/install-system.sh (it npm-installs axe-core)")
    browser.execute_script(AXE_JS.read_text(encoding="utf-8"))
    results = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}, resultTypes: ['violations']})"
        "  .then(r => done(r.violations), e => done({error: String(e)}));", AXE_TAGS)
    if isinstance(results, dict):
        raise RuntimeError(f"axe-core failed on {browser.current_url}: {results['error']}")
    return [violation for violation in results if violation.get("impact") in BLOCKING_IMPACTS]


def assert_accessible(browser: webdriver.Chrome, page: str) -> None:
    """No serious or critical WCAG 2.1 AA violation on the page; the message names each rule and where it fails."""
    violations = accessibility_violations(browser)
    described = [f"{v['id']} ({v['impact']}): {v['help']} at "
                 + ", ".join(" ".join(node["target"]) if isinstance(node["target"], list) else str(node["target"])
                             for node in v["nodes"][:5])
                 for v in violations]
    assert not violations, f"{page}: " + "; ".join(described)


def admin_signs_in(browser: webdriver.Chrome, live_server) -> WebDriverWait:
    """A new superuser, root, signed in to the console; the wait the test goes on with."""
    get_user_model().objects.create_superuser("root", "root@corp.example", "pw")
    wait = WebDriverWait(browser, 120)
    browser.get(f"{live_server.url}/admin/login/")
    wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys("root")
    browser.find_element(By.NAME, "password").send_keys("pw")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ready.presence_of_element_located((By.ID, "site-name")))
    return wait
