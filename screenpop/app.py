"""The ASGI application: `create_app(settings)` builds it; its lifespan owns every resource.

    App (a Starlette Router; the lifespan runs here)
    ├── /telephony/webhook   GenericWebhook   the hot routes: plain ASGI endpoints, no FastAPI stack on the
    ├── /ws/agent            AgentSocket      per-event path (see bench/RESULTS.md)
    ├── /healthz, /readyz    Probe            polled by balancers several times a second
    └── Mount("/")           FastAPI          login, admin, Twilio, pages, static files, docs, metrics

Every error, on either side, answers the same JSON `{"error": ...}` (screenpop/api/deps.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Mount, Route, Router, WebSocketRoute
from starlette.staticfiles import StaticFiles

from screenpop import __version__
from screenpop.api import admin, admin_access, admin_agents, admin_connectors, agents, console, pages, sessions, twilio
from screenpop.api.agents import SOCKET_PATH, AgentSocket
from screenpop.api.browser import BrowserGuard
from screenpop.api.deps import describe_bodies, error_answer
from screenpop.api.docs import mount_docs
from screenpop.api.health import HEALTH_PATH, READY_PATH, Probe, describe_probes
from screenpop.api.telephony import WEBHOOK_PATH, GenericWebhook, describe_webhook
from screenpop.bus import Bus
from screenpop.config import Config
from screenpop.service import Services, build_services
from screenpop.settings import Settings
from web import WEB_DIR

log = logging.getLogger("screenpop")

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


class App(Router):
    """The application: routes tried in order, a lifespan, and `state.services` as on any Starlette app."""

    def __init__(self, routes: Sequence[BaseRoute], services: Services, lifespan: Lifespan) -> None:
        super().__init__(routes, lifespan=lifespan)
        self.state = State()
        self.state.services = services


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, config: Config | None = None) -> App:
    """Build the application. Reads and checks the config now: a bad one raises ConfigError here."""
    settings = settings or Settings()
    services = build_services(settings, bus=bus, config=config)
    routes = [
        Route(WEBHOOK_PATH, GenericWebhook(services)),  # every method: it answers 405 itself, as JSON
        WebSocketRoute(SOCKET_PATH, AgentSocket(services)),
        Route(HEALTH_PATH, Probe(services, ready=False)),
        Route(READY_PATH, Probe(services, ready=True)),
        Mount("/", app=build_api(services)),
    ]
    return App(routes, services, lifespan(services, settings))


def lifespan(services: Services, settings: Settings) -> Lifespan:
    """Start the services before the first request; stop them after the last."""

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[None]:
        async with services.run():
            log.info("screenpop %s ready: %d agents, %d connectors, bus %s", __version__, len(services.directory),
                     len(services.sources), settings.bus_url.split("@")[-1])
            yield

    return run


class Api(FastAPI):
    """FastAPI, for everything but the hot routes. Its OpenAPI document describes the webhook as well."""

    def openapi(self) -> dict[str, Any]:
        """The document FastAPI builds from its routes, with the generic webhook and the probes added once."""
        if self.openapi_schema is None:
            describe_webhook(super().openapi())
            describe_probes(super().openapi())
            describe_bodies(super().openapi())
        return super().openapi()


def build_api(services: Services) -> FastAPI:
    """The FastAPI application: every route but the hot ones. Its lifespan never runs (it is mounted)."""
    api = Api(title="screenpop", version=__version__, docs_url=None, redoc_url=None,
              openapi_url="/api/openapi.json",
              exception_handlers={StarletteHTTPException: error_answer, RequestValidationError: error_answer,
                                  Exception: error_answer})
    api.state.services = services
    api.add_middleware(BrowserGuard, allowed_origins=services.settings.allowed_origins)  # CSRF, headers
    mount_docs(api)  # /api/docs, offline
    api.include_router(twilio.router)
    api.include_router(agents.router)
    api.include_router(console.router)
    api.include_router(admin.router)
    api.include_router(admin_connectors.router)
    api.include_router(admin_agents.router)
    api.include_router(admin_access.router)
    api.include_router(sessions.router)
    api.include_router(pages.router)
    api.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @api.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return api
