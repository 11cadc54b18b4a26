"""`GET /openapi.json` (the contract, gateway/openapi.py) and `GET /docs`, a Swagger UI page over it.

Public, like /healthz. The page needs no network: Swagger UI's files come from the swagger-ui-py
package, installed with the gateway, served under `/docs/assets/` (only the two the page loads).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

from aiohttp import web

from gateway.errors import not_found
from gateway.openapi import DOCS_ASSETS, document_bytes

# Relative URLs: the page works behind a path prefix too. `validatorUrl: null`: Swagger UI would
# otherwise send the document to an online validator.
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>FusionCommerce gateway API</title>
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true,
                                 validatorUrl: null, presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
  </script>
</body>
</html>
"""


def swagger_ui_files() -> Path:
    """swagger-ui-py's static directory, found without importing the package (which would import jinja2)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@cache
def _asset(name: str) -> bytes:
    return (swagger_ui_files() / name).read_bytes()


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def docs_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in DOCS_ASSETS:
        raise not_found(f"file {name}")
    return web.Response(body=_asset(name), content_type=DOCS_ASSETS[name],
                        headers={"Cache-Control": "public, max-age=3600"})
