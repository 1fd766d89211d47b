"""The admin console and the live view in Debian's Chromium (Playwright), against two screenpop processes that
share a Redis bus and a state store: what a new administrator does, from the browser alone.

Hooks: `data-connector` (and `data-status`) on the rows of the connector list and of the waterfall,
`data-path` on every form field (its `.field-error` under it), `data-agent` on agent and access rows,
`data-call-id`/`data-state` on the live view's rows.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web

from screenpop.demo import DemoEnvironment
from tests.conftest import REDIS_URL, free_port, need, port_open, serve_in_thread
from tests.e2e.conftest import ServerProcess, login, sign_in_page, start_process

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

KNOWN = "+14155550100"
TIMEOUT_MS = 15_000
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SHOTS_TO_DOCS = os.environ.get("SCREENPOP_UPDATE_SCREENSHOTS") == "1"  # (as tests/e2e/test_browser.py)
SECRET = "admin-browser-secret"


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    """A real back-office HTTP server in its own thread: `/fail/{id}` answers 500, `/ok/{id}` answers JSON."""
    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    async def ok(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization")
        if given is not None and given != "Bearer tok-1":  # a secret sent along must be the one stored
            return web.json_response({"error": "bad token"}, status=401)
        return web.json_response({"points": 120, "tier": "gold"})

    app = web.Application()
    app.add_routes([web.get("/fail/{id}", fail), web.get("/ok/{id}", ok)])
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Instances A and B: the demo's config and back offices, one Redis bus and call store, one SQLite state
    store (agents and connectors changed in the console), one session secret."""
    redis = urlsplit(REDIS_URL)
    need(port_open(redis.hostname or "127.0.0.1", redis.port or 6379), f"no Redis server at {REDIS_URL}")
    tmp = tmp_path_factory.mktemp("admin-browser")
    with DemoEnvironment(workdir=tmp / "demo", latency_scale=0.2) as demo:
        env = {"SCREENPOP_CONFIG": str(demo.config_path), "SCREENPOP_BUS_URL": REDIS_URL,
               "SCREENPOP_BUS_PREFIX": f"admin-{uuid.uuid4().hex[:8]}", "SCREENPOP_WEBHOOK_SECRET": SECRET,
               "SCREENPOP_SESSION_SECRET": "shared-session-secret-for-the-admin-test",
               "SCREENPOP_STATE_URL": f"sqlite:///{tmp / 'state.db'}"}
        pa, pb = free_port(), free_port()
        a = start_process(["serve", "--port", str(pa)], tmp, env=env, port=pa, name="a")
        b = start_process(["serve", "--port", str(pb)], tmp, env=env, port=pb, name="b")
        try:
            for s in (a, b):
                s.secret = SECRET
                s.wait_ready()
            yield a, b
        finally:
            a.stop()
            b.stop()


@pytest.fixture
def sign_in(browser: Any) -> Iterator[Callable[..., Any]]:
    """Sign someone in through the real login page of an instance; their page (JS errors fail the test)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(server: ServerProcess, username: str, password: str = "demo", lands: str = "/",
                  frames: list[str] | None = None) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC",
                                      color_scheme="light", reduced_motion="reduce", accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda err: errors.append(f"{username}: {err}"))
        if frames is not None:  # every raw frame the server sends this browser
            page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
        return sign_in_page(page, server.url, username, password, lands, TIMEOUT_MS)

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def shot(page: Any, name: str, tmp_path: Path) -> None:
    """A screenshot for the README (docs/img/ when SCREENPOP_UPDATE_SCREENSHOTS=1, else the test's tmp dir)."""
    folder = IMG if SHOTS_TO_DOCS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=True)


def axe_check(page: Any, what: str) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
           for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{what}: {bad}"


def admin_api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10,
                        headers={"Authorization": f"Bearer {login(server.url, 'admin')}"})


def run_lookup(page: Any, number: str = KNOWN) -> None:
    page.get_by_role("link", name="Test lookup").click()
    page.locator("#lookup-number").fill(number)
    page.get_by_role("button", name="Run lookup").click()


def test_admin_adds_a_broken_connector_sees_error_fixes_it_sees_ok(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess], backend: str, tmp_path: Path) -> None:
    """Through the form: a bad URL is refused next to its field; a connector answering 500 shows `error` with its
    latency in the waterfall; edited to a working URL it shows `ok`; the connector list shows its health."""
    from playwright.sync_api import expect

    a, _ = pair
    name = f"loyalty_{uuid.uuid4().hex[:4]}"
    page = sign_in(a, "admin", lands="/admin")
    page.get_by_role("button", name="Add a connector").click()
    form = page.get_by_test_id("connector-form")
    form.locator("#connector-name").fill(name)
    form.locator("#connector-kind").select_option("http")
    url = form.locator('[data-path="options.url"] input')
    url.fill("ftp://nowhere/{customer_id}")
    form.get_by_role("button", name="Add").click()
    error = form.locator('[data-path="options.url"] > .field-error')
    expect(error).to_be_visible(timeout=TIMEOUT_MS)
    expect(error).to_contain_text("options.url")
    expect(url).to_have_attribute("aria-invalid", "true")
    url.fill(f"{backend}/fail/{{customer_id}}")
    form.get_by_role("button", name="Add").click()
    row = page.locator(f'#connector-list [data-connector="{name}"]')
    expect(row).to_be_visible(timeout=TIMEOUT_MS)
    with admin_api(a) as api:  # the form sent what was filled in, the rest is the server's defaults
        stored = api.get(f"/api/admin/connectors/{name}").json()
        assert stored["view"] is None and stored["role"] == "section" and stored["timeout_ms"] == 600

    run_lookup(page)
    bar = page.locator(f'[data-testid="waterfall-table"] [data-connector="{name}"]')
    expect(bar).to_have_attribute("data-status", "error", timeout=TIMEOUT_MS)
    expect(bar.get_by_test_id("latency")).to_contain_text("ms")
    expect(bar).to_contain_text("HTTP 500")
    expect(page.locator('[data-testid="waterfall-table"] [data-connector="customers"]')).to_have_attribute(
        "data-status", "ok")
    expect(page.get_by_test_id("lookup-card").locator('[data-section="customer"]')).to_have_attribute(
        "data-status", "ok")
    shot(page, "admin-waterfall.png", tmp_path)
    axe_check(page, "admin: test lookup")

    page.get_by_role("link", name="Connectors").click()
    row.get_by_role("button", name=f"Edit {name}").click()
    form = page.get_by_test_id("connector-form")
    form.locator('[data-path="options.url"] input').fill(f"{backend}/ok/{{customer_id}}")
    form.get_by_role("button", name="Save").click()
    expect(form).to_have_count(0, timeout=TIMEOUT_MS)
    run_lookup(page)
    expect(bar).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)
    expect(bar).to_contain_text("gold")

    # a secret: typed once, then shown as "set"; saving the form again keeps it (the source still accepts it)
    page.get_by_role("link", name="Connectors").click()
    row.get_by_role("button", name=f"Edit {name}").click()
    form = page.get_by_test_id("connector-form")
    form.locator('[data-path="options.auth"] > select').select_option("bearer")
    token = form.locator('[data-path="options.auth.token"]')
    expect(token.get_by_test_id("secret-state")).to_have_text("not set")
    token.locator("input").fill("tok-1")
    form.get_by_role("button", name="Save").click()
    expect(form).to_have_count(0, timeout=TIMEOUT_MS)
    row.get_by_role("button", name=f"Edit {name}").click()
    form = page.get_by_test_id("connector-form")
    expect(token.get_by_test_id("secret-state")).to_have_text("set")
    expect(token.locator("input")).to_be_hidden()
    expect(token.get_by_role("button", name="Replace")).to_be_visible()
    form.get_by_role("button", name="Save").click()
    expect(form).to_have_count(0, timeout=TIMEOUT_MS)
    run_lookup(page)
    expect(bar).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)  # "Bearer tok-1" still sent

    page.get_by_role("link", name="Connectors").click()
    expect(row).to_contain_text("closed")
    shot(page, "admin-connectors.png", tmp_path)
    axe_check(page, "admin: connectors")
    row.get_by_role("button", name=f"Edit {name}").click()
    page.get_by_test_id("connector-form").locator("summary").click()
    axe_check(page, "admin: connector form")
    shot(page, "admin-connector-form.png", tmp_path)


def test_new_agent_signs_in_at_once_on_both_instances(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess], tmp_path: Path) -> None:
    """An agent added in A's console signs in at once on A and on B; a call to their new extension rings them;
    a taken extension is refused next to its field."""
    from playwright.sync_api import expect

    a, b = pair
    agent, ext = f"carol{uuid.uuid4().hex[:4]}", str(2000 + int(uuid.uuid4().int % 7000))
    page = sign_in(a, "admin", lands="/admin")
    page.get_by_role("link", name="Agents").click()
    page.get_by_role("button", name="Add an agent").click()
    form = page.get_by_test_id("agent-form")
    form.locator("#agent-id").fill(agent)
    form.locator("#agent-name").fill("Carol Diaz")
    form.locator("#agent-extensions").fill("1001")
    form.locator("#agent-password").fill("carol-password")
    form.get_by_role("button", name="Add").click()
    expect(form.locator('[data-path="extensions"] > .field-error')).to_contain_text("already belongs to 'alice'",
                                                                                    timeout=TIMEOUT_MS)
    form.locator("#agent-extensions").fill(ext)
    form.get_by_role("button", name="Add").click()
    expect(page.locator(f'#agent-list [data-agent="{agent}"]')).to_be_visible(timeout=TIMEOUT_MS)
    shot(page, "admin-agents.png", tmp_path)
    axe_check(page, "admin: agents")

    on_b = sign_in(b, agent, password="carol-password")
    expect(on_b.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    sign_in(a, agent, password="carol-password")
    call_id = a.call(KNOWN, agent=ext)
    expect(on_b.locator(f'[data-call-id="{call_id}"]')).to_have_attribute("data-match", "one", timeout=TIMEOUT_MS)
    axe_check(on_b, "agent console")


def test_a_journal_connector_gets_the_journal_kinds_form(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess]) -> None:
    """The demo's `crm-journal` (role journal) opens with the journal kind's options (its body template) and
    saves unchanged; a new connector switched to role journal gets them too."""
    from playwright.sync_api import expect

    a, _ = pair
    page = sign_in(a, "admin", lands="/admin")
    page.locator('#connector-list [data-connector="crm-journal"]').get_by_role("button", name="Edit").click()
    form = page.get_by_test_id("connector-form")
    expect(form.locator('[data-path="options.body"]')).to_be_visible(timeout=TIMEOUT_MS)  # the journal's own
    expect(form.locator('[data-path="options.items"]')).to_have_count(0)  # no section kind's field
    form.get_by_role("button", name="Save").click()
    expect(form).to_have_count(0, timeout=TIMEOUT_MS)  # saved: the editor closes
    with admin_api(a) as api:
        assert api.get("/api/admin/connectors/crm-journal").json()["role"] == "journal"
    page.get_by_role("button", name="Add a connector").click()
    form = page.get_by_test_id("connector-form")
    expect(form.locator('[data-path="options.body"]')).to_have_count(0)  # the section kinds' form first
    form.locator('[data-path="role"] select').select_option("journal")
    expect(form.locator('[data-path="options.body"]')).to_be_visible(timeout=TIMEOUT_MS)
    form.get_by_role("button", name="Cancel").click()


def test_export_then_reimport_the_config(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess], backend: str) -> None:
    """Export gives the YAML file; a connector deleted afterwards comes back when the file is imported, once
    its secret (exported as ********, and deleted with it) is entered again: the console says which."""
    from playwright.sync_api import expect

    a, _ = pair
    name = f"exported_{uuid.uuid4().hex[:4]}"
    with admin_api(a) as api:
        r = api.put(f"/api/admin/connectors/{name}", json={"kind": "http", "options": {
            "url": f"{backend}/ok/{{customer_id}}", "headers": {"X-Api-Key": "very-secret-key"}}})
        assert r.status_code == 201, r.text
        page = sign_in(a, "admin", lands="/admin")
        with page.expect_download() as download:
            page.get_by_role("link", name="Export YAML").click()
        text = Path(download.value.path()).read_text(encoding="utf-8")
        assert name in text and "very-secret-key" not in text and "connectors:" in text
        assert api.delete(f"/api/admin/connectors/{name}").status_code == 204
        page.reload()
        expect(page.locator(f'#connector-list [data-connector="{name}"]')).to_have_count(0, timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Import YAML").click()
        page.get_by_label("YAML").fill(text)
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.locator("#config-import-error")).to_contain_text("X-Api-Key", timeout=TIMEOUT_MS)
        page.get_by_label("YAML").fill(text.replace("'********'", "very-secret-key"))
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.locator(f'#connector-list [data-connector="{name}"]')).to_be_visible(timeout=TIMEOUT_MS)
        back = api.get(f"/api/admin/connectors/{name}").json()
        assert back["options"]["headers"]["X-Api-Key"] == "********"  # stored again, still secret


def test_supervisor_live_view_shows_ringing_then_answered(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess], tmp_path: Path) -> None:
    """A supervisor (made in the console's API on A) opens the live view on B: a call to alice posted to A
    shows as ringing with alice on it, then as answered, without reloading; A's connector numbers show on B."""
    from playwright.sync_api import expect

    a, b = pair
    sup = f"sam{uuid.uuid4().hex[:4]}"
    with admin_api(a) as api:
        r = api.post("/api/admin/agents", json={"id": sup, "role": "supervisor", "password": "sam-password"})
        assert r.status_code == 201, r.text
    alice = sign_in(a, "alice")
    live = sign_in(b, sup, password="sam-password", lands="/admin/live")
    call_id = a.call(KNOWN, agent="1001")
    row = live.locator(f'#live-calls [data-call-id="{call_id}"]')
    expect(row).to_have_attribute("data-state", "ringing", timeout=TIMEOUT_MS)
    expect(row.locator('[data-agent="alice"]')).to_be_visible()
    expect(alice.locator(f'[data-call-id="{call_id}"]')).to_be_visible(timeout=TIMEOUT_MS)
    expect(row.locator('[data-agent="alice"]')).to_contain_text("ms", timeout=TIMEOUT_MS)  # her ack's latency
    strip = live.locator('#live-connectors [data-connector="customers"]')
    expect(strip).to_contain_text("breaker closed")
    expect(strip).not_to_contain_text("p95 —", timeout=TIMEOUT_MS)  # A's lookups, seen from B
    shot(live, "admin-live.png", tmp_path)
    axe_check(live, "live view")
    assert a.event(call_id, "answered", KNOWN, ["1001"]).status_code == 202
    expect(row).to_have_attribute("data-state", "answered", timeout=TIMEOUT_MS)
    a.event(call_id, "ended", KNOWN)
    expect(row).to_have_count(0, timeout=TIMEOUT_MS)
    assert sign_in(a, "alice").goto(f"{a.url}/admin").status == 403


def test_masked_email_never_reaches_the_agent_and_the_audit_says_who_saw_it(
        sign_in: Callable[..., Any], pair: tuple[ServerProcess, ServerProcess], tmp_path: Path) -> None:
    """With the identity's e-mail masked for all but admins, alice's console shows a partial address and her
    raw socket frames never hold the full one, while the admin's do; the access audit lists both, masked or
    not, by customer."""
    from playwright.sync_api import expect

    a, b = pair
    with admin_api(a) as api:
        body = api.get("/api/admin/connectors/customers").json()
        body.pop("origin")
        body["masking"] = [{"field": "email", "rule": "email", "unmasked_for": ["admin"]}]
        assert api.put("/api/admin/connectors/customers", json=body).status_code == 200
        found = api.post("/api/admin/lookup/waterfall", json={"number": KNOWN}).json()
        identity = next(r for r in found["rows"] if r["section"] == "customer")["data"]["customer"]
        email, customer = identity["extra"]["email"], identity["id"]
        assert email not in json.dumps(found["card"])  # the card "as an agent sees it" is masked too
    alice_frames: list[str] = []
    admin_frames: list[str] = []
    alice = sign_in(b, "alice", frames=alice_frames)
    admin = sign_in(a, "admin", lands="/admin", frames=admin_frames)
    admin.goto(f"{a.url}/")
    call_id = a.call(KNOWN, agent="1001")
    a.event(call_id, "ringing", KNOWN, ["1001", "admin"])
    card = alice.locator(f'[data-call-id="{call_id}"]')
    expect(card.locator('[data-section="customer"]')).to_have_attribute("data-status", "ok", timeout=TIMEOUT_MS)
    expect(card).to_contain_text(f"{email[0]}\u2022\u2022\u2022@{email.split('@')[1]}")
    expect(card).not_to_contain_text(email)
    expect(admin.locator(f'[data-call-id="{call_id}"]')).to_contain_text(email, timeout=TIMEOUT_MS)
    assert alice_frames and not any(email in f for f in alice_frames)
    assert any(email in f for f in admin_frames)

    page = sign_in(a, "admin", lands="/admin")
    page.get_by_role("link", name="Access audit").click()
    page.locator("#access-customer").fill(customer)
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#access-list")
    expect(rows.locator('[data-agent="alice"][data-action="displayed"]').first).to_be_visible(timeout=TIMEOUT_MS)
    expect(rows.locator('[data-agent="admin"]').first).to_be_visible()
    expect(rows.locator('[data-agent="alice"]').first).to_contain_text("yes")  # masked for her
    shot(page, "admin-access.png", tmp_path)
    axe_check(page, "admin: access audit")
    with admin_api(a) as api:
        body["masking"] = []
        api.put("/api/admin/connectors/customers", json=body)


def test_login_page_has_no_serious_accessibility_violation(browser: Any, pair: tuple[ServerProcess, ServerProcess]
                                                           ) -> None:
    """axe-core on the sign-in page."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(f"{pair[0].url}/login")
        axe_check(page, "login")
    finally:
        context.close()
