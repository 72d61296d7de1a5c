"""Headless Chromium through Selenium, for the member pages: Debian's chromium and chromium-driver.

``scripts/ensure_browser.sh`` (run by ``make test``) installs them where apt can. Without them the
browser tests skip with the reason, except in CI (``MEMBERFLOW_REQUIRE_BROWSER=1``), where a missing
browser fails them: a page that was never opened in a browser is not tested. Selenium is given the
driver's and the browser's paths, so it never looks for (or downloads) one of its own.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

REQUIRE = "MEMBERFLOW_REQUIRE_BROWSER"


def _paths() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextmanager
def headless_chromium(width: int = 1024, height: int = 768) -> Iterator[Any]:
    paths = _paths()
    if paths is None:
        message = "no Chromium and chromedriver here: run `make browser` (Debian: chromium, chromium-driver)"
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = paths
    options = Options()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--window-size={width},{height}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
