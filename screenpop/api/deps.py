"""What the routes share: the running services, the logged-in agent, the request body, the error answer.

Every error the API answers is the same JSON, `{"error": "<why>"}`, built by `error_response`; `error_answer`
turns an exception into it (FastAPI's exception handler, and the hot routes of screenpop/app.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from screenpop import jsonlimits
from screenpop.auth import COOKIE_NAME, Agent
from screenpop.callstore import CallStoreError
from screenpop.models import format_validation_error
from screenpop.service import Services
from screenpop.sessions import Session, SessionStoreError
from screenpop.throttle import ThrottleError

log = logging.getLogger("screenpop.api")

MAX_BODY = 64 * 1024  # a request body's default limit
M = TypeVar("M", bound=BaseModel)


# -- errors ----------------------------------------------------------------------------------------
def error_response(status: int, message: object, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The API's one error answer: `{"error": message}` with `status`."""
    return JSONResponse({"error": str(message)}, status_code=status, headers=headers)


async def error_answer(request: HTTPConnection, exc: Exception) -> JSONResponse:
    """The answer to an exception: an HTTPException's status and detail; a request FastAPI could not read,
    422 naming the field; the call store unreachable, 503; anything else 500 `internal error`, logged with its stack."""
    if isinstance(exc, StarletteHTTPException):
        return error_response(exc.status_code, exc.detail, exc.headers)
    if isinstance(exc, RequestValidationError):
        return error_response(422, format_validation_error(exc.errors(), root="request"))
    if isinstance(exc, CallStoreError):  # Redis away: the sender may retry (its message holds no secret)
        log.warning("%s: %s", request.url.path, exc)
        return error_response(503, "the call store cannot be reached; try again")
    if isinstance(exc, SessionStoreError | ThrottleError):
        log.warning("%s: %s", request.url.path, exc)
        return error_response(503, "the session store cannot be reached; try again", {"Retry-After": "1"})
    log.error("unhandled error on %s", request.url.path, exc_info=exc)
    return error_response(500, "internal error")


# -- the request body ------------------------------------------------------------------------------
async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, or 413 as soon as it grows past `limit` (the rest is never read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[M], limit: int = MAX_BODY) -> M:
    """The JSON body as `model`: 400 when it is not JSON, 422 naming the field when it does not fit."""
    raw = await read_body(request, limit)
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors(include_url=False, include_input=False)):
            raise HTTPException(400, "body is not valid JSON") from None
        raise HTTPException(422, format_validation_error(err, root="body")) from None


async def read_object(request: Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The JSON body, which must be an object: 400 when it is not JSON, 422 when it is not an object."""
    raw = await read_body(request, limit)
    try:
        body = jsonlimits.loads(raw)
    except jsonlimits.JsonError as err:
        raise HTTPException(400, f"body: {err}") from None
    if not isinstance(body, dict):
        raise HTTPException(422, f"expected a JSON object, got {type(body).__name__}")
    return body


# -- the services and the session ------------------------------------------------------------------
async def get_services(conn: HTTPConnection) -> Services:
    """The Services of the running application, as a dependency. `async` on purpose: FastAPI runs a plain
    `def` dependency in its thread pool."""
    services: Services = conn.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def session_token(conn: HTTPConnection) -> tuple[str | None, bool]:
    """(token, came_from_cookie): `Authorization: Bearer` first, then the session cookie."""
    header = conn.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip(), False
    return conn.cookies.get(COOKIE_NAME), True


async def current_session(conn: HTTPConnection, services: Services) -> tuple[Agent, Session] | None:
    """The agent and the live session of the request's token (bearer, else cookie); None when there is none
    (never logged in, logged out, expired, revoked, or the agent was removed)."""
    token, _ = session_token(conn)
    session = await services.sessions.check(token)
    agent = services.directory.get(session.agent_id) if session else None
    return (agent, session) if agent is not None and session is not None else None


async def current_agent(request: Request, services: ServicesDep) -> Agent:
    """The agent of a valid session, else 401."""
    found = await current_session(request, services)
    if found is None:
        raise HTTPException(401, "not logged in")
    return found[0]


AgentDep = Annotated[Agent, Depends(current_agent)]


# -- the OpenAPI document --------------------------------------------------------------------------
BODY_MODELS: dict[str, type[BaseModel]] = {}  # the request bodies' models, added to the document's schemas


def body_doc(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself (read_model, read_object): the body is `model`."""
    BODY_MODELS[model.__name__] = model
    body: dict[str, Any] = {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def describe_bodies(openapi: dict[str, Any]) -> None:
    """Add the schemas of every body declared with `body_doc` to an OpenAPI document, and describe every
    error answer as what it is: `{"error": "<why>"}` (FastAPI's default 422 describes its own format)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, model in BODY_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    schemas["Error"] = ERROR_SCHEMA
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status, answer in responses.items():
                if str(status).startswith(("4", "5")):
                    answer["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


_HOMES = {"admin": "/admin", "supervisor": "/admin/live"}


def home_of(role: str) -> str:
    """Where a role starts after signing in: administrators in the admin console, supervisors in the live
    view, agents in the agent console (the login API answers it, and the login page redirects there)."""
    return _HOMES.get(role, "/")
