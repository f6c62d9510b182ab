"""Swagger UI at ``/docs`` over the node's own ``/openapi.json``.

The UI's files are vendored in ``static/swagger`` (npm ``swagger-ui-dist``, Apache-2.0,
its LICENSE and NOTICE beside them), so a node never fetches anything from a CDN and the
page works offline. Only the bundle, its stylesheet and our initializer are served.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

ASSETS = Path(__file__).parent / "static" / "swagger"
FILES = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css",
         "init.js": "application/javascript", "LICENSE": "text/plain", "NOTICE": "text/plain"}
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Smartchain node API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html",
                        headers={"Content-Security-Policy": CSP})


async def docs_asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return web.FileResponse(ASSETS / name, headers={"Content-Type": FILES[name],
                                                    "Cache-Control": "max-age=86400"})


def add_docs_routes(app: web.Application) -> None:
    app.router.add_get("/docs", docs_page)
    app.router.add_get("/docs/{name}", docs_asset)
