"""The landing page at `/` and the API documentation pages, `/docs` (Swagger UI) and `/redoc`.

The documentation pages load their scripts and styles from the service itself (the files
the `fastapi-offline` package vendors, served under `/docs/assets/`), never from a CDN, so
they work on a network without internet access (ReDoc's one image from its CDN, a logo, is
replaced by an empty one). `STOREKEEPER_DOCS_ENABLED=false` removes
them, and the landing page then links to neither.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.routing import Match

from storekeeper.errors import NotFound

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
# The vendored files and their media types; nothing else is served from the folder.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# ReDoc's sidebar shows Redocly's logo from their CDN: served with an empty image instead
# (the image then hides itself; the "API docs by Redocly" link stays).
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@cache
def _asset_bytes(name: str) -> bytes:
    content = (ASSETS_DIR / name).read_bytes()
    return content.replace(REDOC_CDN_LOGO, b"data:,") if name == "redoc.standalone.js" else content


# `validatorUrl: null`: Swagger UI would otherwise ask validator.swagger.io for a badge.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def docs_router(app: FastAPI) -> APIRouter:
    """`/docs`, `/redoc` and their assets, for `app`'s OpenAPI document."""
    router = APIRouter(include_in_schema=False)

    @router.get(ASSETS_PATH + "/{name}")
    async def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound("There is no such file.")
        return Response(
            _asset_bytes(name),
            media_type=ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    return router


landing_router = APIRouter(include_in_schema=False)

_LINKS = (
    ("/docs", "API documentation (Swagger UI)"),
    ("/redoc", "API reference (ReDoc)"),
    ("/shop", "Shop"),
    ("/admin", "Staff pages"),
    ("/health", "Health"),
    ("/health/ready", "Readiness"),
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto;
       padding: 0 1rem; line-height: 1.5; color: #1f2937; }}
h1 {{ margin-bottom: 0.25rem; }}
p.version {{ color: #6b7280; margin-top: 0; }}
li {{ margin: 0.35rem 0; }}
code {{ background: #f3f4f6; padding: 0 0.25rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="version">version {version}</p>
<p>{description}</p>
<ul>
{links}
</ul>
<p>The API lives under <code>/api/v1</code>.</p>
</body>
</html>
"""


def _serves(app: FastAPI, path: str) -> bool:
    """Whether a GET of `path` reaches a route of `app` (asked of the routes themselves:
    included routers keep their own routes, so `app.routes` does not list every path)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.routes)


@landing_router.get("/")
async def landing_page(request: Request) -> HTMLResponse:
    """A page for people who open the service's address: links to the documentation, the
    staff pages and the health checks (only those this process serves)."""
    app: FastAPI = request.app
    links = "\n".join(
        f'<li><a href="{escape(path)}">{escape(label)}</a> <code>{escape(path)}</code></li>'
        for path, label in _LINKS
        if _serves(app, path)
    )
    page = _PAGE.format(
        title=escape(app.title),
        version=escape(app.version),
        description=escape(app.description),
        links=links,
    )
    return HTMLResponse(
        page,
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                "base-uri 'none'"
            ),
        },
    )
