"""The browser pages (agent console, login, admin console, live view) and the static files they load."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from screenpop.api.browser import CSP  # one policy for every page (BrowserGuard sets it on every answer too)
from screenpop.api.deps import ServicesDep, current_session, home_of
from screenpop.sessions import SessionStoreError
from web import WEB_DIR

router = APIRouter()


def _page(name: str, status_code: int = 200) -> Response:
    return FileResponse(WEB_DIR / name, media_type="text/html", status_code=status_code,
                        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})


@router.get("/", include_in_schema=False)
async def console() -> Response:
    """The agent console."""
    return _page("index.html")


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, services: ServicesDep) -> Response:
    """The login page; an agent already signed in (the back button) goes straight to their home page, so the
    page never has to ask the API and show a failed request in the browser's console."""
    try:
        found = await current_session(request, services)
    except SessionStoreError:
        found = None  # the sign-in itself says that the sessions cannot be reached
    if found is not None:
        return RedirectResponse(home_of(found[0].role), status_code=303)
    return _page("login.html")


async def _role_page(request: Request, services: ServicesDep, name: str, roles: tuple[str, ...]) -> Response:
    """`name` for a signed-in agent with one of `roles`; the sign-in page without a live session; else 403
    with a link back to the agent console."""
    found = await current_session(request, services)
    if found is None:
        return RedirectResponse("/login", status_code=303)
    agent, _session = found
    if agent.role not in roles:
        return _page("admin/forbidden.html", status_code=403)
    return _page(name)


@router.get("/admin", include_in_schema=False)
async def admin_console(request: Request, services: ServicesDep) -> Response:
    """The administrators' console (role admin)."""
    return await _role_page(request, services, "admin/index.html", ("admin",))


@router.get("/admin/live", include_in_schema=False)
async def live_view(request: Request, services: ServicesDep) -> Response:
    """The live view (supervisors and admins)."""
    return await _role_page(request, services, "admin/live.html", ("supervisor", "admin"))
