"""The browser pages (agent console, login) and the static files they load."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from screenpop.api.browser import CSP  # one policy for every page (BrowserGuard sets it on every answer too)
from web import WEB_DIR

router = APIRouter()


def _page(name: str) -> Response:
    return FileResponse(WEB_DIR / name, media_type="text/html",
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


@router.get("/", include_in_schema=False)
async def console() -> Response:
    """The agent console."""
    return _page("index.html")


@router.get("/login", include_in_schema=False)
async def login_page() -> Response:
    """The login page."""
    return _page("login.html")
