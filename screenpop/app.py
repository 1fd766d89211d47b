"""The ASGI application: `create_app(settings)` builds it; its lifespan owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from screenpop import __version__
from screenpop.api import admin, agents, pages, telephony, twilio
from screenpop.api.fastpath import FastPath
from screenpop.bus import Bus
from screenpop.config import Config
from screenpop.service import build_services
from screenpop.settings import Settings
from web import WEB_DIR

log = logging.getLogger("screenpop")


def create_app(settings: Settings | None = None, *, bus: Bus | None = None, config: Config | None = None) -> FastPath:
    """Build the application. Reads and checks the config now: a bad one raises ConfigError here.

    The result is the FastAPI application behind the hot-path front (see screenpop/api/fastpath.py); its
    attributes (`state`, `routes` ...) are the FastAPI application's."""
    settings = settings or Settings()
    services = build_services(settings, bus=bus, config=config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services.run():
            log.info("screenpop %s ready: %d agents, %d connectors, bus %s", __version__, len(services.directory),
                     len(services.sources), settings.bus_url.split("@")[-1])
            yield

    app = FastAPI(title="screenpop", version=__version__, lifespan=lifespan, docs_url="/api/docs",
                  redoc_url=None, openapi_url="/api/openapi.json")
    app.state.services = services
    app.include_router(telephony.router)
    app.include_router(twilio.router)
    app.include_router(agents.router)
    app.include_router(admin.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "version": __version__, "calls": len(services.registry.calls)}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"error": f"{where}: {first.get('msg')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    return FastPath(app)
