"""The console under its security headers, in Debian's Chromium: login and a live card work with the CSP (no
violation reported), framing by another page is refused, and logging out closes the socket back to login."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ServerProcess, login

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TIMEOUT_MS = 10_000


def test_login_and_console_work_under_the_csp_and_cannot_be_framed(browser: Any,
                                                                    demo_server: ServerProcess) -> None:
    """No CSP violation from login to a shown card, no error logged by the login page; a page of another
    origin cannot frame the console; a revoked session sends the open console back to the login page."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda err: problems.append(str(err)))
    errors: list[str] = []  # the login page logs nothing, not even a refused request
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    first = page.goto(f"{demo_server.url}/login")
    assert first is not None and "frame-ancestors 'none'" in first.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    assert errors == [], errors
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{demo_server.url}/", timeout=TIMEOUT_MS)
    expect(page.get_by_test_id("conn-status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT_MS)
    call_id = demo_server.call("+14155550100", "1001")
    expect(page.locator(f'[data-call-id="{call_id}"]')).to_be_visible(timeout=TIMEOUT_MS)
    assert problems == [], problems

    framer = context.new_page()  # another origin (about:blank with content) framing the console
    with framer.expect_console_message(lambda m: "frame-ancestors" in m.text, timeout=TIMEOUT_MS):
        framer.set_content(f'<iframe src="{demo_server.url}/"></iframe>')

    admin = login(demo_server.url, "admin")
    r = httpx.delete(f"{demo_server.url}/api/admin/agents/alice/sessions", headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 204
    page.wait_for_url(f"{demo_server.url}/login", timeout=TIMEOUT_MS)
    context.close()
