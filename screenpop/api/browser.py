"""The browser boundary: cross-site request refusal (CSRF) and the security headers of every answer.

`BrowserGuard` wraps the FastAPI application (every route but the two hot ones: the webhook is signed, the
agent socket checks its own origin):

- A state-changing request (POST, PUT, PATCH, DELETE) that a browser could send on its own, that is one
  carrying the session cookie without an `Authorization: Bearer` header, or a login, must come from an
  allowed origin: its `Origin` is this server's own (scheme and Host) or one of SCREENPOP_ALLOWED_ORIGINS.
  Browsers send `Origin` with every such request; one without it that a browser marks as coming from
  another site (`Sec-Fetch-Site`) must carry `X-Screenpop-CSRF: 1` (a header no other site's page can add
  without a CORS preflight, which screenpop never grants). A client that is no browser (no `Origin`, no
  `Sec-Fetch-*`: curl, scripts) cannot be made to send a request by another site, and passes. A body
  sent with the cookie must be `application/json` (the content types a form can send without a preflight
  are refused). Else 403 or 415, with the reason.
  Bearer-token clients are not affected; the telephony webhooks (`/telephony/...`) are signed instead.
- Every answer gets `Content-Security-Policy` (no inline script or style, nothing from other origins, no
  framing: `frame-ancestors 'none'`), `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and
  `Referrer-Policy: same-origin`.
"""

from __future__ import annotations

import json

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from screenpop.auth import COOKIE_NAME

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")  # Swagger UI's own styles only
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
CSRF_HEADER = "x-screenpop-csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SAME_SITE = frozenset({"same-origin", "none"})  # Sec-Fetch-Site of a page's own request, or a typed URL


class BrowserGuard:
    """ASGI middleware: the CSRF rule and the security headers (see the module docstring)."""

    def __init__(self, app: ASGIApp, allowed_origins: list[str]) -> None:
        self.app = app
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)
        csp = DOCS_CSP if scope["path"] == "/api/docs" else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = csp
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        if refused is None:
            await self.app(scope, receive, with_headers)
            return
        status, reason = refused
        body = json.dumps({"error": reason}).encode()
        await with_headers({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """(status, reason) when the request must be refused, else None."""
        if scope["method"] not in UNSAFE or scope["path"].startswith("/telephony/"):
            return None
        headers = Headers(scope=scope)
        if headers.get("authorization", "")[:7].lower() == "bearer ":
            return None
        cookie = f"{COOKIE_NAME}=" in headers.get("cookie", "")
        if not cookie and scope["path"] != "/api/login":
            return None  # nothing a browser adds by itself: no session to ride on
        origin = headers.get("origin")
        if origin is not None:
            own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
            if origin.rstrip("/").lower() not in self.allowed | {own}:
                return 403, (f"cross-site request refused: origin {origin[:100]!r} is not this server's "
                             "(add it to SCREENPOP_ALLOWED_ORIGINS if it is yours)")
        elif cookie and not headers.get(CSRF_HEADER) and headers.get("sec-fetch-site", "none") not in SAME_SITE:
            return 403, "cross-site request refused: no Origin header; send X-Screenpop-CSRF: 1"
        has_body = headers.get("transfer-encoding") or headers.get("content-length", "0") not in ("", "0")
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if cookie and has_body and kind != "application/json":
            return 415, "send the body as JSON (Content-Type: application/json)"
        return None
