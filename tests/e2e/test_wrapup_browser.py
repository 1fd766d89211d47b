"""Wrap-ups, history, search, keyboard, languages and notifications in Debian's Chromium (Playwright), against
`screenpop serve` as a real process over the demo's back offices (its CRM a real HTTP server), restarted
in the middle."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port, need
from tests.e2e.conftest import ServerProcess, login, sign_in_page, start_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KNOWN = "+14155550100"  # Dana Whitfield
UNKNOWN = "+14155550199"
TIMEOUT_MS = 15_000
DOCS = Path(__file__).resolve().parents[2] / "docs"
SHOTS_TO_DOCS = os.environ.get("SCREENPOP_UPDATE_SCREENSHOTS") == "1"
# the page is "hidden" when the test says so, and every Notification shown is recorded
HIDDEN_AND_NOTES = """
Object.defineProperty(Document.prototype, "hidden", { configurable: true, get() { return window.__hidden === true; } });
window.__notes = [];
const Original = window.Notification;
if (Original) {
  window.Notification = class extends Original {
    constructor(title, options) { super(title, options); window.__notes.push({ title, body: options.body, n: this }); }
  };
}
"""


class Stack:
    """The demo's back offices (this process) and `screenpop serve` (a process, restartable on its port)."""

    def __init__(self, tmp: Path, redis_url: str) -> None:
        from screenpop.demo import DemoEnvironment

        self.tmp = tmp
        self.redis_url = redis_url  # the sessions live there, so the agents stay signed in across the restart
        self.env = DemoEnvironment(workdir=tmp / "demo", latency_scale=0).start()
        config = yaml.safe_load(self.env.config_path.read_text())
        config["wrapup"].update(retry_base_s=0.3, retry_max_s=0.6)
        self.config = tmp / "config.yaml"
        self.config.write_text(yaml.safe_dump(config, allow_unicode=True))
        self.port = free_port()
        self.server: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        self.server = start_process(["serve", "--port", str(self.port)], self.tmp, port=self.port, name="serve", env={
            "SCREENPOP_CONFIG": str(self.config), "SCREENPOP_STATE_URL": self.env.state_url,
            "SCREENPOP_WEBHOOK_SECRET": "demo-secret", "SCREENPOP_SESSION_SECRET": "issue-14-e2e-secret",
            "SCREENPOP_BUS_URL": self.redis_url, "SCREENPOP_BUS_PREFIX": f"wrapup-e2e-{self.port}"})
        self.server.wait_ready()
        return self.server

    def restart(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.start()

    def crm(self, down: bool) -> None:
        r = httpx.post(f"{self.env.crm_url}/admin/down", json={"down": down}, timeout=5)
        assert r.status_code == 200, r.text

    def crm_entries(self, call_id: str) -> list[dict[str, Any]]:
        return [e for e in httpx.get(f"{self.env.crm_url}/api/calls", timeout=5).json() if e.get("call_id") == call_id]

    def call(self, number: str, *agents: str, answered_by: str | None = None) -> str:
        """Offered, ringing at `agents` (extensions), then answered by one of them when asked."""
        assert self.server is not None
        call_id = f"w-{uuid.uuid4().hex[:10]}"
        for kind, to in (("offered", None), ("ringing", list(agents))) + (
                (("answered", [answered_by]),) if answered_by else ()):
            assert self.server.event(call_id, kind, number, to).status_code == 202
        return call_id

    def end(self, call_id: str, number: str) -> None:
        assert self.server is not None
        assert self.server.event(call_id, "ended", number).status_code == 202

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.env.stop()


def wait_for_draft(stack: Stack, agent: str, call_id: str, notes: str) -> None:
    """Poll the server until `agent`'s draft of the call holds `notes` (the console sends it after a pause
    in typing, and no page event says it arrived); fail after about 10 s."""
    token = login(stack.url, agent)
    with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as http:
        for _ in range(200):
            rows = http.get(f"/api/calls/{call_id}/wrapups").json()["wrapups"]
            if any(r["agent"] == agent and r["notes"] == notes for r in rows):
                return
            time.sleep(0.05)
    raise AssertionError(f"the draft of {call_id} never reached the server")


def answered_then_ended(stack: Stack, page: Any, notes: str) -> tuple[str, Any]:
    """A known caller's call that alice (1001) answers and types `notes` for (until the draft is on the
    server), then ended: (its call id, its card on `page`, kept for the wrap-up)."""
    from playwright.sync_api import expect

    call_id = stack.call(KNOWN, "1001", answered_by="1001")
    card = page.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-state", "answered", timeout=TIMEOUT_MS)
    card.get_by_label("Notes").fill(notes)
    wait_for_draft(stack, "alice", call_id, notes)
    stack.end(call_id, KNOWN)
    expect(card).to_have_attribute("data-state", "ended", timeout=TIMEOUT_MS)
    return call_id, card


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The back offices and screenpop (its sessions and bus on Redis, as in production), for the whole module."""
    from urllib.parse import urlsplit

    from tests.conftest import REDIS_URL, port_open

    u = urlsplit(REDIS_URL)
    need(port_open(u.hostname or "127.0.0.1", u.port or 6379), f"no Redis server at {REDIS_URL}")
    s = Stack(tmp_path_factory.mktemp("wrapup"), REDIS_URL)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture
def console(browser: Any, stack: Stack) -> Iterator[Callable[..., Any]]:
    """Log an agent in (form by id, any language); their console page. JavaScript errors fail the test."""
    from playwright.sync_api import expect

    contexts: list[Any] = []
    errors: list[str] = []

    def login(username: str, locale: str = "en-US", **options: Any) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale=locale, timezone_id="UTC",
                                      color_scheme="light", reduced_motion="reduce", **options)
        context.add_init_script(HIDDEN_AND_NOTES)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(f"{username}: {err}"))
        sign_in_page(page, stack.url, username, timeout_ms=TIMEOUT_MS)
        expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
        return page

    yield login
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the console: {errors}"


def test_a_wrapup_saved_while_the_crm_is_down_reaches_it_once_across_a_restart(console: Callable[..., Any],
                                                                              stack: Stack) -> None:
    """alice saves "callback" while the CRM is down (queued, retrying), screenpop restarts, the CRM comes back:
    "saved", the CRM holds exactly one entry, and the next call shows her note in the history, to bob too."""
    from playwright.sync_api import expect

    alice = console("alice")
    call_id = stack.call(KNOWN, "1001", answered_by="1001")
    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-state", "answered", timeout=TIMEOUT_MS)
    note = f"Wants a quote for 40 units, ref {call_id}"
    stack.crm(down=True)
    try:
        card.get_by_label("Notes").fill(note)
        card.get_by_label("Disposition").select_option("callback")
        card.get_by_test_id("wrapup-save").click()
        state = card.get_by_test_id("wrapup-state")
        expect(state).to_have_attribute("data-state", "queued", timeout=TIMEOUT_MS)
        expect(state).to_contain_text("retrying", timeout=TIMEOUT_MS)
        expect(state).to_contain_text("HTTP 503")

        stack.end(call_id, KNOWN)
        expect(card).to_have_attribute("data-state", "ended", timeout=TIMEOUT_MS)  # kept for its wrap-up
        stack.restart()
        expect(alice.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
        expect(state).to_have_attribute("data-state", "queued")
    finally:
        stack.crm(down=False)
    expect(state).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    expect(state).to_contain_text("Saved to CRM")
    entries = stack.crm_entries(call_id)
    assert len(entries) == 1, entries
    assert (entries[0]["notes"], entries[0]["disposition"], entries[0]["customer_id"]) == (note, "callback", "C1001")
    card.get_by_test_id("wrapup-close").click()
    expect(card).to_have_count(0)

    bob = console("bob")
    again = stack.call(KNOWN, "1001", "1002")
    for page in (alice, bob):
        history = page.locator(f'[data-call-id="{again}"] [data-section="history"]')
        expect(history).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)
        expect(history).to_contain_text(note)
        expect(history).to_contain_text("Alice Martin")
    assert len(stack.crm_entries(call_id)) == 1
    stack.end(again, KNOWN)


def test_an_unknown_caller_is_found_by_name_and_the_card_fills(console: Callable[..., Any], stack: Stack) -> None:
    """An unknown number: alice searches "Whitfield", picks Dana, and the card fills for her; the
    new-customer link carries the number."""
    from playwright.sync_api import expect

    alice = console("alice")
    call_id = stack.call(UNKNOWN, "1001", answered_by="1001")
    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-match", "none", timeout=TIMEOUT_MS)
    new = card.get_by_test_id("new-customer")
    assert new.get_attribute("href") == f"{stack.env.crm_url}/customers/new?phone=%2B14155550199"
    card.get_by_test_id("search-input").fill("Whitfield")
    card.get_by_test_id("search-input").press("Enter")
    result = card.locator("button[data-found-id]")
    expect(result).to_have_count(1, timeout=TIMEOUT_MS)
    result.click()
    expect(card.get_by_test_id("caller-name")).to_have_text("Dana Whitfield", timeout=TIMEOUT_MS)
    for name in ("balance", "purchases", "history"):
        expect(card.locator(f'[data-section="{name}"]')).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)
    link = card.locator('[data-section="customer"] a[data-testid="crm-link"]')
    assert link.get_attribute("href") == f"{stack.env.crm_url}/customers/C1001"
    assert card.locator('[data-section="purchases"] a[data-testid="row-link"]').first.get_attribute(
        "href").startswith(f"{stack.env.crm_url}/orders/")
    expect(card.get_by_test_id("search")).to_have_count(0)
    stack.end(call_id, UNKNOWN)


def test_keyboard_only_from_ring_to_saved_wrapup(console: Callable[..., Any], stack: Stack) -> None:
    """With keys only: ? shows the shortcuts, n focuses the notes, Tab reaches disposition, follow-up and
    Save in that order, Ctrl+Enter saves; the CRM gets the entry."""
    from playwright.sync_api import expect

    alice = console("alice")
    call_id = stack.call(KNOWN, "1001", answered_by="1001")
    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card.get_by_test_id("wrapup")).to_be_visible(timeout=TIMEOUT_MS)
    kb = alice.keyboard
    kb.press("?")
    expect(alice.get_by_test_id("help")).to_be_visible()
    expect(alice.get_by_test_id("help")).to_contain_text("Save the wrap-up")
    kb.press("Escape")
    expect(alice.get_by_test_id("help")).to_be_hidden()
    kb.press("n")
    expect(card.get_by_test_id("wrapup-notes")).to_be_focused()
    kb.type("Keyboard only: resolved the invoice question")
    kb.press("Tab")
    expect(card.get_by_test_id("wrapup-disposition")).to_be_focused()
    kb.press("ArrowDown")  # the first disposition, "Resolved"
    kb.press("Tab")
    expect(card.get_by_test_id("wrapup-follow-up")).to_be_focused()
    for _ in range(4):  # the date input's fields (month, day, year, picker) come before Save
        if alice.evaluate("document.activeElement.dataset.testid") == "wrapup-save":
            break
        kb.press("Tab")
    expect(card.get_by_test_id("wrapup-save")).to_be_focused()
    kb.press("Shift+Tab")
    kb.press("Control+Enter")
    expect(card.get_by_test_id("wrapup-state")).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    (entry,) = stack.crm_entries(call_id)
    assert (entry["disposition"], entry["notes"]) == ("resolved", "Keyboard only: resolved the invoice question")
    for _ in range(4):  # out of the date input: the saved wrap-up's Save is disabled, Close comes next
        if alice.evaluate("document.activeElement.dataset.testid") == "wrapup-close":
            break
        kb.press("Tab")
    expect(card.get_by_test_id("wrapup-close")).to_be_focused()
    kb.press("c")
    expect(card).to_be_focused()
    stack.end(call_id, KNOWN)


def test_the_console_in_greek_and_the_switch(console: Callable[..., Any], stack: Stack, tmp_path: Path) -> None:
    """With a Greek browser the console and the card are in Greek (the config's words too); the switch
    changes the language and keeps the choice."""
    from playwright.sync_api import expect

    alice = console("alice", locale="el-GR")
    expect(alice.locator("html")).to_have_attribute("lang", "el")
    call_id = stack.call(KNOWN, "1001", answered_by="1001")
    card = alice.locator(f'[data-call-id="{call_id}"]')
    for name in ("balance", "purchases", "credit", "history"):
        expect(card.locator(f'[data-section="{name}"]')).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)
    expect(card.get_by_test_id("call-state")).to_have_text("Απαντήθηκε")
    expect(card.get_by_role("heading", name="Υπόλοιπο")).to_be_visible()
    expect(card.get_by_role("heading", name="Ιστορικό")).to_be_visible()
    expect(card.get_by_test_id("wrapup")).to_contain_text("Ολοκλήρωση κλήσης")
    expect(alice.get_by_test_id("conn-status")).to_contain_text("Συνδεδεμένο")
    shots = DOCS / "img" if SHOTS_TO_DOCS else tmp_path
    shots.mkdir(exist_ok=True)
    alice.screenshot(path=str(shots / "console-el.png"))
    alice.get_by_test_id("lang").select_option("sv")
    expect(alice.locator("html")).to_have_attribute("lang", "sv", timeout=TIMEOUT_MS)
    expect(alice.locator(f'[data-call-id="{call_id}"]').get_by_test_id("call-state")).to_have_text(
        "Besvarat", timeout=TIMEOUT_MS)
    alice.reload()
    expect(alice.locator("html")).to_have_attribute("lang", "sv", timeout=TIMEOUT_MS)
    stack.end(call_id, KNOWN)


def test_a_card_popping_while_hidden_shows_a_notification_that_focuses_it(console: Callable[..., Any],
                                                                         stack: Stack) -> None:
    """Permission granted through Playwright: alice turns notifications on; a call while the page is hidden
    shows one, and clicking it focuses the card. Nothing is shown while the page is visible."""
    from playwright.sync_api import expect

    alice = console("alice", permissions=["notifications"])
    alice.get_by_test_id("notify-desktop").check()
    expect(alice.get_by_test_id("notify-desktop")).to_be_checked()
    seen = stack.call(KNOWN, "1001")
    expect(alice.locator(f'[data-call-id="{seen}"]')).to_be_visible(timeout=TIMEOUT_MS)
    assert alice.evaluate("window.__notes.length") == 0
    alice.evaluate("window.__hidden = true")
    call_id = stack.call(UNKNOWN, "1001")
    alice.wait_for_function("window.__notes.length === 1", timeout=TIMEOUT_MS)
    assert alice.evaluate("window.__notes[0].title") == "Incoming call"
    alice.evaluate("window.__hidden = false; window.__notes[0].n.onclick()")
    expect(alice.locator(f'[data-call-id="{call_id}"]')).to_be_focused()
    for c, number in ((seen, KNOWN), (call_id, UNKNOWN)):
        stack.end(c, number)


def test_a_transferred_call_carries_the_notes_so_far(console: Callable[..., Any], stack: Stack) -> None:
    """alice answers and types; the call rings at bob (a transfer): his card shows her notes and starts
    with them; he saves the wrap-up and the CRM gets it with her words; alice's card stays for her own
    wrap-up, which the CRM gets too: one entry per agent."""
    from playwright.sync_api import expect

    alice, bob = console("alice"), console("bob")
    call_id = stack.call(KNOWN, "1001", answered_by="1001")
    card = alice.locator(f'[data-call-id="{call_id}"]')
    card.get_by_label("Notes").fill("Invoice 42 disputed; customer sends a photo")
    wait_for_draft(stack, "alice", call_id, "Invoice 42 disputed; customer sends a photo")
    assert stack.server is not None
    assert stack.server.event(call_id, "ringing", KNOWN, ["1002"]).status_code == 202
    assert stack.server.event(call_id, "answered", KNOWN, ["1002"]).status_code == 202
    theirs = bob.locator(f'[data-call-id="{call_id}"]')
    expect(theirs.get_by_test_id("transferred-from")).to_contain_text("alice", timeout=TIMEOUT_MS)
    expect(theirs.get_by_test_id("wrapup-carried")).to_contain_text("Notes from Alice Martin:")
    expect(theirs.get_by_test_id("wrapup-notes")).to_have_value("Invoice 42 disputed; customer sends a photo")
    theirs.get_by_test_id("wrapup-notes").press("End")
    theirs.get_by_test_id("wrapup-notes").type(" Photo received, credit note issued.")
    theirs.get_by_label("Disposition").select_option("resolved")
    theirs.get_by_test_id("wrapup-save").click()
    expect(theirs.get_by_test_id("wrapup-state")).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    (entry,) = [e for e in stack.crm_entries(call_id) if e["agent"] == "Bob Chen"]
    assert entry["notes"] == "Invoice 42 disputed; customer sends a photo Photo received, credit note issued."
    expect(card).to_have_attribute("data-state", "ended")  # over for alice, kept for her wrap-up
    card.get_by_label("Disposition").select_option("callback")
    card.get_by_test_id("wrapup-save").click()
    expect(card.get_by_test_id("wrapup-state")).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    assert sorted(e["agent"] for e in stack.crm_entries(call_id)) == ["Alice Martin", "Bob Chen"]
    stack.end(call_id, KNOWN)


def test_a_reload_keeps_the_call_waiting_for_its_wrapup_and_the_recent_list(console: Callable[..., Any],
                                                                          stack: Stack) -> None:
    """alice reloads the page after two calls ended: the answered one stays on screen with her draft for
    its wrap-up, which she then saves, the other stays in Recent; after logout the tab keeps neither."""
    from playwright.sync_api import expect

    alice = console("alice")
    missed = stack.call(UNKNOWN, "1001")
    expect(alice.locator(f'[data-call-id="{missed}"]')).to_be_visible(timeout=TIMEOUT_MS)
    stack.end(missed, UNKNOWN)
    recent = alice.locator(f'li[data-recent-call-id="{missed}"]')
    expect(recent).to_contain_text("Ended", timeout=TIMEOUT_MS)
    call_id, card = answered_then_ended(stack, alice, "Asked for the spring catalogue")

    alice.reload()
    expect(alice.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    expect(card).to_have_attribute("data-state", "ended", timeout=TIMEOUT_MS)
    expect(card.get_by_test_id("wrapup-notes")).to_have_value("Asked for the spring catalogue", timeout=TIMEOUT_MS)
    expect(recent).to_contain_text("Ended")
    card.get_by_label("Disposition").select_option("callback")
    card.get_by_test_id("wrapup-save").click()
    expect(card.get_by_test_id("wrapup-state")).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    (entry,) = stack.crm_entries(call_id)
    assert (entry["notes"], entry["disposition"]) == ("Asked for the spring catalogue", "callback")

    alice.get_by_test_id("logout").click()
    alice.wait_for_url(f"{stack.url}/login", timeout=TIMEOUT_MS)
    assert alice.evaluate("sessionStorage.getItem('screenpop.calls')") is None


def test_a_call_waiting_for_its_wrapup_follows_the_agent_to_another_browser(console: Callable[..., Any],
                                                                           stack: Stack) -> None:
    """alice's browser goes away after a call she answered ended: in another browser she finds its card with
    her draft and saves the wrap-up (the CRM holds it once); a third browser no longer shows the call."""
    from playwright.sync_api import expect

    first = console("alice")
    call_id, _ = answered_then_ended(stack, first, "Wants the October invoice again")
    first.context.close()  # the browser crashed, or alice moved to another desk

    second = console("alice")
    card = second.locator(f'[data-call-id="{call_id}"]')
    expect(card).to_have_attribute("data-state", "ended", timeout=TIMEOUT_MS)
    expect(card.get_by_test_id("wrapup-notes")).to_have_value("Wants the October invoice again", timeout=TIMEOUT_MS)
    card.get_by_label("Disposition").select_option("callback")
    card.get_by_test_id("wrapup-save").click()
    expect(card.get_by_test_id("wrapup-state")).to_have_attribute("data-state", "saved", timeout=TIMEOUT_MS)
    (entry,) = stack.crm_entries(call_id)
    assert (entry["notes"], entry["disposition"]) == ("Wants the October invoice again", "callback")

    third = console("alice")
    later = stack.call(UNKNOWN, "1001")  # shown after the snapshot, so the snapshot has been read by then
    expect(third.locator(f'[data-call-id="{later}"]')).to_be_visible(timeout=TIMEOUT_MS)
    expect(third.locator(f'[data-call-id="{call_id}"]')).to_have_count(0)
    stack.end(later, UNKNOWN)
