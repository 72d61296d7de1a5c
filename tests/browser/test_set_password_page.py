"""The set-password page in headless Chromium, served over real HTTP by Chalice's local server.

A purchase's welcome email is delivered with a link minted at that moment; the browser opens it,
is checked for what a keyboard and screen reader user needs (a labelled field, focus reachable with
Tab, visible focus, sufficient contrast), sets the password by keyboard alone, sees the
confirmation, and the new password then logs in through the API.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.cli.factory import CLIFactory
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from app import app
from chalicelib import bootstrap
from chalicelib.domain.members import placeholder_set_password_url
from chalicelib.domain.outbox import OutboxKind
from devstack.__main__ import local_server
from tests.builders import config, unique_email
from tests.entrypoints.conftest import World, make_container
from tests.entrypoints.test_rendered_emails import purchase
from tests.fakes import InMemoryMailer, in_memory_stores
from tests.support.browser import headless_chromium
from tests.support.members import cheap_passwords

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Served:
    def __init__(self, base: str, world: World) -> None:
        self.base = base
        self.world = world


@pytest.fixture
def served() -> Iterator[Served]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    link = placeholder_set_password_url(base)
    model = config(
        email={"from": "Acme Academy <hello@example.com>"},
        emails={"welcome": {"subject": "Welcome", "body": f"Set your password: {link}"}},
        automations={
            "onboarding": {
                "trigger": {"tag_added": "Purchase – Foundation"},
                "steps": [{"send_email": "welcome"}],
            }
        },
    )
    stores = in_memory_stores()
    container = make_container(stores, model, environ={"PUBLIC_BASE_URL": base})
    container.passwords = cheap_passwords()
    mailer = InMemoryMailer()
    mailer.verify("example.com")
    container.mailer = mailer
    bootstrap.override(lambda: container)
    chalice_config = CLIFactory(project_dir=".").create_config_obj(chalice_stage_name="dev")
    server = local_server(app, chalice_config, "127.0.0.1", port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from chalice.test import Client

        with Client(app) as client:
            yield Served(base, World(client, stores, container))
    finally:
        server.shutdown()
        bootstrap.override(None)


def emailed_link(served: Served, email: str) -> str:
    world = served.world
    assert purchase(world, email, "Ada").status_code == 200
    items = world.stores.outbox.list_for_contact(email, kind=OutboxKind.EMAIL).items
    world.container.delivery().deliver_ids([i.id for i in items], time_left=lambda: 60.0)
    mailer = world.container.mailer
    assert isinstance(mailer, InMemoryMailer)
    (sent,) = [message for _, message in mailer.sent if message.to == email]
    start = sent.text.index(f"{served.base}/members/set-password?token=")
    return sent.text[start:].split()[0]


def luminance(rgba: str) -> float:
    channels = [float(part) for part in rgba[rgba.index("(") + 1 : rgba.index(")")].split(",")[:3]]
    linear = [c / 255 / 12.92 if c / 255 <= 0.03928 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def background_of(browser: Any, element: Any) -> str:
    """The colour painted behind ``element``: its own, else the nearest ancestor's that is not clear."""
    script = """
        let node = arguments[0];
        while (node) {
            const colour = getComputedStyle(node).backgroundColor;
            if (colour && colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
            node = node.parentElement;
        }
        return 'rgb(255, 255, 255)';
    """
    return str(browser.execute_script(script, element))


def test_a_member_sets_a_password_in_the_browser_by_keyboard_and_then_logs_in(served: Served) -> None:
    email = unique_email("buyer")
    link = emailed_link(served, email)
    with headless_chromium() as browser:
        browser.get(link)
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang")
        field = browser.find_element(By.CSS_SELECTOR, "input[type=password]")
        label = browser.find_element(By.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert label.text.strip()
        assert field.get_attribute("autocomplete") == "new-password"

        # Keyboard only: Tab from the top of the page reaches the password field, then the button.
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        reached = []
        for _ in range(6):
            active = browser.switch_to.active_element
            reached.append((active.tag_name, active.get_attribute("type")))
            if active.get_attribute("type") == "password":
                break
            active.send_keys(Keys.TAB)
        assert reached[-1] == ("input", "password"), reached
        focused = browser.switch_to.active_element
        outline = focused.value_of_css_property("outline-style")
        shadow = focused.value_of_css_property("box-shadow")
        assert outline not in ("", "none") or shadow not in ("", "none"), "focus must be visible"

        # Text and the button meet WCAG AA contrast (4.5:1) against what is behind them.
        for element in [label, *browser.find_elements(By.CSS_SELECTOR, "button, p, h1")]:
            ratio = contrast(element.value_of_css_property("color"), background_of(browser, element))
            assert ratio >= 4.5, (element.tag_name, element.text, ratio)

        focused.send_keys(PASSWORD, Keys.ENTER)
        # Enter submits the form; the answer is a new page, which may take a moment on a busy machine.
        WebDriverWait(browser, 30).until(expected_conditions.staleness_of(field))
        confirmation = browser.find_element(By.TAG_NAME, "body").text
        assert "password" in confirmation.lower()
        assert browser.find_elements(By.CSS_SELECTOR, "input[type=password]") == []

    request = urllib.request.Request(
        f"{served.base}/members/login",
        data=json.dumps({"email": email, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        assert set(json.load(answer)) == {"token", "expires_at", "offerings"}
