"""The API's module routes and their description come from the modules' own declarations."""

from __future__ import annotations

from smartchain.api.openapi import openapi_spec
from smartchain.api.server import ROUTES
from smartchain.app import MODULES, http_queries

METHODS = ("get", "post", "put", "delete", "patch")


def _operations() -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, ops in openapi_spec()["paths"].items()
            for method, op in ops.items() if method in METHODS]


def test_every_operation_has_a_unique_operation_id_and_a_tag() -> None:
    ops = _operations()
    ids = [op.get("operationId") for _, _, op in ops]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    assert all(op.get("tags") for _, _, op in ops)


def test_each_module_query_is_routed_and_documented_as_declared() -> None:
    routed = {(m, p) for m, p, _ in ROUTES}
    spec = openapi_spec()
    for query in http_queries():
        assert ("GET", query.path) in routed
        assert spec["paths"][query.path]["get"]["operationId"] == query.operation_id


def test_module_queries_are_tagged_with_their_module_s_name() -> None:
    for module in MODULES:
        name = module.make().name
        assert all(q.tag == name for q in module.api.queries)


def test_the_schemas_module_queries_name_are_in_the_document() -> None:
    schemas = openapi_spec()["components"]["schemas"]
    for name in ("Token", "Contract", "ComputeJob", "StorageDeal"):
        assert name in schemas
