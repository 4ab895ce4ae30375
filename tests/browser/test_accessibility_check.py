"""The accessibility check the browser tests run is no formality: on a page with known WCAG failures it reports
them, and on the same page fixed it reports none."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.browser.conftest import accessibility_violations, assert_accessible

BROKEN = ('<!doctype html><html><head><title>t</title></head><body><main><h1>Form</h1>'
          '<img src="chart.png"><input type="text">'
          '<p style="color:#bbb;background:#fff">pale text nobody can read</p></main></body></html>')
FIXED = ('<!doctype html><html lang="en"><head><title>t</title></head><body><main><h1>Form</h1>'
         '<img src="chart.png" alt="Questions per day"><label>Name <input type="text"></label>'
         '<p style="color:#333;background:#fff">dark text</p></main></body></html>')


def test_axe_reports_missing_alt_text_labels_and_contrast_and_passes_the_fixed_page(browser):
    browser.get("data:text/html;charset=utf-8," + quote(BROKEN))
    found = {violation["id"] for violation in accessibility_violations(browser)}
    assert {"image-alt", "label", "color-contrast"} <= found, found
    with pytest.raises(AssertionError, match="image-alt"):
        assert_accessible(browser, "the broken page")

    browser.get("data:text/html;charset=utf-8," + quote(FIXED))
    assert_accessible(browser, "the fixed page")
