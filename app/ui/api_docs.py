"""``/docs`` (Swagger UI) and ``/redoc`` with their scripts and styles served by this process.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, so they are blank without
internet access. The same pages here point at the copies that the ``fastapi-offline`` package
ships (Swagger UI 5 and ReDoc 2 bundles, installed from PyPI with the project's dependencies).
The app is created with ``docs_url=None, redoc_url=None`` and calls ``install_api_docs``.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
FAVICON_URL = "/ui/static/favicon.svg"

# The pages may load nothing from another host. ReDoc's menu footer shows a logo from its
# vendor's CDN (not configurable): the policy stops that request in the browser, and ReDoc
# hides the image when it fails. Inline script and styles are how both pages start.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

# validatorUrl null: Swagger UI would otherwise send the spec to a public validator for a badge.
SWAGGER_PARAMETERS = {"validatorUrl": None, "persistAuthorization": False, "displayRequestDuration": True,
                      "tryItOutEnabled": False}


def install_api_docs(app: FastAPI, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _offline(get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API – Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{FAVICON_URL}", swagger_ui_parameters=SWAGGER_PARAMETERS,
        ))

    @app.get(oauth2_redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _offline(get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} API – ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js", redoc_favicon_url=f"{root}{FAVICON_URL}",
            with_google_fonts=False,
        ))


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_POLICY
    return page
