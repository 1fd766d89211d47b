"""`/api/docs`: Swagger UI on the OpenAPI document, served from the swagger-ui-bundle package (no CDN: it
works on a network without internet access). The page loads no inline script (web/js/docs.js starts it)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # no stubs: one Path

router = APIRouter()
ASSETS = "/api/docs/assets"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>screenpop API</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
  <script src="{ASSETS}/swagger-ui-bundle.js" defer></script>
  <script src="/static/js/docs.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi="/api/openapi.json"></div>
</body>
</html>
"""


@router.get("/api/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    """Swagger UI."""
    return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})


def mount_docs(api: FastAPI) -> None:
    """The page and Swagger UI's files."""
    api.include_router(router)
    api.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
