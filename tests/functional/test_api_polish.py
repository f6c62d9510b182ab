"""Operator-facing routes: liveness and readiness, Swagger UI served from the package,
and CORS only for the origins the config allows."""

from __future__ import annotations

from collections.abc import Callable

import requests
from framework.harness import NodeProcess

DAPP = "https://dapp.example"


def test_health_and_ready_answer_once_the_node_runs(smart_node: NodeProcess) -> None:
    health = requests.get(f"{smart_node.url}/health", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = requests.get(f"{smart_node.url}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert int(ready.json()["height"]) >= 0


def test_swagger_ui_is_served_from_the_package_over_the_nodes_openapi(
        smart_node: NodeProcess) -> None:
    page = requests.get(f"{smart_node.url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: every asset is ours
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for asset, kind in (("swagger-ui-bundle.js", "application/javascript"),
                        ("swagger-ui.css", "text/css"), ("init.js", "application/javascript")):
        r = requests.get(f"{smart_node.url}/docs/{asset}", timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(kind), asset
    assert "/openapi.json" in requests.get(f"{smart_node.url}/docs/init.js", timeout=10).text
    assert "Apache License" in requests.get(f"{smart_node.url}/docs/LICENSE", timeout=10).text
    assert requests.get(f"{smart_node.url}/docs/../node.json", timeout=10).status_code == 404


def test_cors_is_off_by_default(smart_node: NodeProcess) -> None:
    r = requests.get(f"{smart_node.url}/v1/status", headers={"Origin": DAPP}, timeout=10)
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


def test_cors_allows_only_the_configured_origins(
        smart_node_factory: Callable[..., NodeProcess]) -> None:
    node = smart_node_factory(start=False)
    node.config.api.cors_origins = [DAPP]
    node.config.save(node.home)
    node.start()
    allowed = requests.get(f"{node.url}/v1/status", headers={"Origin": DAPP}, timeout=10)
    assert allowed.headers["Access-Control-Allow-Origin"] == DAPP
    preflight = requests.options(f"{node.url}/v1/txs", timeout=10, headers={
        "Origin": DAPP, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    other = requests.get(f"{node.url}/v1/status", headers={"Origin": "https://evil.example"},
                         timeout=10)
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    node.stop()
