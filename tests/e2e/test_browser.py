"""The agent console in Debian's Chromium (Playwright), against `screenpop demo` running as a real process.

Hooks the console guarantees: `data-call-id` on each active card (with `data-state` and `data-match`),
`data-section` and `data-status` on each section panel, `data-testid="caller-name"` on the headline,
`data-testid="conn-status"` (with `data-state`) on the connection indicator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import sign_in_page

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KNOWN = "+14155550100"
UNKNOWN = "+14155550199"
SEVERAL = "+14155550111"
ALICE_EXT = "1001"
TIMEOUT_MS = 10_000
DOCS = Path(__file__).resolve().parents[2] / "docs"
# The README's screenshots are rewritten only when asked (SCREENPOP_UPDATE_SCREENSHOTS=1): a test run must
# not leave the checkout changed.
SHOTS_TO_DOCS = os.environ.get("SCREENPOP_UPDATE_SCREENSHOTS") == "1"
NOT_A_NAME = re.compile(r"^\s*(Unknown caller|Number withheld|Invalid number|Identifying caller…)?\s*$")


@pytest.fixture
def open_console(browser: Any, demo_server: Any) -> Iterator[Callable[..., Any]]:
    """Log an agent in through the real login page; returns their console page (JS errors fail the test)."""
    from playwright.sync_api import expect

    contexts: list[Any] = []
    errors: list[str] = []

    def login(username: str, width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US",
                                      timezone_id="UTC", color_scheme="light", reduced_motion="reduce")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(f"{username}: {err}"))
        sign_in_page(page, demo_server.url, username, timeout_ms=TIMEOUT_MS)
        expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
        return page

    yield login
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


def _wait_settled(card: Any, sections: tuple[str, ...] = ("balance", "purchases", "credit", "offers")) -> None:
    from playwright.sync_api import expect

    for name in sections:
        expect(card.locator(f'[data-section="{name}"]')).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)


def test_known_caller_pops_for_the_ringing_agent_only(open_console: Callable[..., Any], demo_server: Any,
                                                      tmp_path: Path) -> None:
    """A call ringing at alice fills her card (name, balance, purchases, credit) and shows bob nothing."""
    from playwright.sync_api import expect

    alice, bob = open_console("alice"), open_console("bob")
    call_id = demo_server.call(KNOWN, agent=ALICE_EXT)

    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-match", "one", timeout=TIMEOUT_MS)
    headline = card.get_by_test_id("caller-name")
    expect(headline).not_to_have_text(NOT_A_NAME, timeout=TIMEOUT_MS)
    expect(card.locator('[data-section="customer"]')).to_have_attribute("data-status", "ok")
    _wait_settled(card)
    for title in ("Balance", "Recent purchases", "Credit terms"):
        expect(card.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(card.get_by_test_id("call-state")).to_have_text("Ringing")

    expect(bob.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected")
    expect(bob.locator("[data-call-id]")).to_have_count(0)

    shots = DOCS if SHOTS_TO_DOCS else tmp_path
    alice.screenshot(path=str(shots / "screenshot-console.png"))
    alice.set_viewport_size({"width": 400, "height": 800})
    expect(headline).to_be_visible()
    alice.screenshot(path=str(shots / "screenshot-console-narrow.png"))
    demo_server.call(KNOWN, agent=ALICE_EXT, event="ended", call_id=call_id)
    expect(card).to_have_count(0, timeout=TIMEOUT_MS)


def test_unknown_number_shows_unknown_caller(open_console: Callable[..., Any], demo_server: Any) -> None:
    """A number no customer has shows "Unknown caller", and the card moves to the recent list when it ends."""
    from playwright.sync_api import expect

    alice = open_console("alice")
    call_id = demo_server.call(UNKNOWN, agent=ALICE_EXT)

    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card.get_by_test_id("caller-name")).to_have_text("Unknown caller", timeout=TIMEOUT_MS)
    expect(card).to_have_attribute("data-match", "none")

    demo_server.call(UNKNOWN, agent=ALICE_EXT, event="ended", call_id=call_id)
    expect(card).to_have_count(0, timeout=TIMEOUT_MS)
    expect(alice.locator(f'li[data-recent-call-id="{call_id}"]')).to_contain_text("Ended")


def test_narrow_console_has_no_horizontal_scroll(open_console: Callable[..., Any], demo_server: Any) -> None:
    """At 400 px wide (a side panel) a full card and a several-matches card fit without horizontal scroll."""
    from playwright.sync_api import expect

    alice = open_console("alice", width=400, height=800)
    known = demo_server.call(KNOWN, agent=ALICE_EXT)
    several = demo_server.call(SEVERAL, agent=ALICE_EXT)

    _wait_settled(alice.locator(f'[data-call-id="{known}"]'))
    picker = alice.locator(f'[data-call-id="{several}"]')
    expect(picker).to_have_attribute("data-match", "several", timeout=TIMEOUT_MS)
    expect(picker.locator("button[data-customer-id]")).to_have_count(2)

    assert alice.evaluate("document.documentElement.scrollWidth") <= 400
    for call_id, number in ((known, KNOWN), (several, SEVERAL)):
        demo_server.call(number, agent=ALICE_EXT, event="ended", call_id=call_id)


def test_picking_one_of_several_customers_fills_the_card(open_console: Callable[..., Any], demo_server: Any) -> None:
    """When two customers share the number, clicking one sends `select` and the card fills for that customer."""
    from playwright.sync_api import expect

    alice = open_console("alice")
    call_id = demo_server.call(SEVERAL, agent=ALICE_EXT)

    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-match", "several", timeout=TIMEOUT_MS)
    expect(card.locator('[data-section][data-status="pending"]')).to_have_count(0, timeout=TIMEOUT_MS)
    choice = card.locator("button[data-customer-id]").first
    name = choice.locator(".candidate-name").inner_text()
    choice.click()

    expect(card.get_by_test_id("caller-name")).to_have_text(name, timeout=TIMEOUT_MS)
    _wait_settled(card)
    demo_server.call(SEVERAL, agent=ALICE_EXT, event="ended", call_id=call_id)


def test_offers_show_two_lists_with_reasons(open_console: Callable[..., Any], demo_server: Any,
                                            tmp_path: Path) -> None:
    """The known caller's offers: "Likely to order again" with intervals, "Fits what they bought" with reasons."""
    from playwright.sync_api import expect

    alice = open_console("alice")
    call_id = demo_server.call(KNOWN, agent=ALICE_EXT)
    card = alice.locator(f'[data-call-id="{call_id}"]')
    _wait_settled(card, ("offers",))
    offers = card.locator('[data-section="offers"]')
    again = offers.locator('[data-offer-list="again"]')
    fits = offers.locator('[data-offer-list="fits"]')
    expect(again.get_by_role("heading", name="Likely to order again")).to_be_visible()
    expect(fits.get_by_role("heading", name="Fits what they bought")).to_be_visible()
    expect(again.locator("li.offer")).to_have_count(3)
    expect(fits.locator("li.offer")).to_have_count(3)
    expect(again.locator(".offer-why").first).to_have_text(re.compile(r"^(usually every .+, last bought|bought once)"))
    expect(fits.locator(".offer-why").first).to_have_text(
        re.compile(r"^(bought by \d+ % of customers who bought|popular)"))
    offers.screenshot(path=str(DOCS if SHOTS_TO_DOCS else tmp_path) + "/screenshot-offers.png")
    demo_server.call(KNOWN, agent=ALICE_EXT, event="ended", call_id=call_id)
