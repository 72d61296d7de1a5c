"""The browser the member page tests use: it starts headless, renders a page, and follows the keyboard."""

from __future__ import annotations

from urllib.parse import quote

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.support.browser import headless_chromium

PAGE = """<!doctype html><html lang="en"><title>t</title>
<form><label for="a">A</label><input id="a" name="a"><button type="submit">Go</button></form></html>"""


def test_the_headless_browser_renders_a_page_and_moves_focus_with_tab() -> None:
    with headless_chromium() as browser:
        browser.get("data:text/html;charset=utf-8," + quote(PAGE))
        field = browser.find_element(By.ID, "a")
        field.click()
        field.send_keys("typed", Keys.TAB)
        focused = browser.switch_to.active_element
        assert focused.tag_name == "button"
        assert field.get_attribute("value") == "typed"
