"""The node's OpenAPI document checked against the node itself, by schemathesis.

One real node (``smart_node``) holds a little of everything the read routes show: blocks,
committed transactions, a token, a contract whose event carries address-like junk. Every
operation of ``/openapi.json`` is then exercised with a bounded number of generated
requests (half of them naming the things that exist, so the 200 answers are checked too),
and every answer must be: no 5xx, a status code the document lists for that operation, the
documented content type, a body matching the documented schema, and a 405 naming the
methods the path takes. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from framework.harness import NodeProcess
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from smartchain.client import deployed_address
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.jsoncontract import violations

SMART_NODE_CHAIN_ID = "smart-schema-test-1"
HPC = 10**8
EXAMPLES_PER_OPERATION = 25  # 27 operations: the whole run stays well under a minute


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_api_schema/" + tag.encode()))


ISSUER, HOLDER = _key("issuer"), _key("holder")
SMART_NODE_GENESIS = [(ISSUER.address, 1_000 * HPC), (HOLDER.address, 1_000 * HPC)]
CONTRACT = b"""
function shout(text) emit("note", {to = text, owner = text}) return text end
function get() return 42 end
"""

# Addresses are bech32 with a checksum: the pattern alone would mostly make invalid ones.
schemathesis.openapi.format("smart-address",
                            st.binary(min_size=20, max_size=20).map(to_bech32))


@pytest.fixture(scope="module")
def seeded(smart_node: NodeProcess) -> dict[str, list[Any]]:
    """Things that exist on the node, by the parameter names that name them."""
    client = smart_node.client
    sent = client.transfer(ISSUER, to_bech32(HOLDER.address), 5 * HPC)
    issued = client.issue_token(ISSUER, "PARK", "Parking credit", 2, 1_000_000)
    contract = deployed_address(client.deploy_contract(ISSUER, CONTRACT))
    shouted = client.call_contract(HOLDER, contract, "shout", ["z" * 40])
    txs = [sent, issued, shouted]
    assert all(t["receipt"]["ok"] for t in txs), txs
    addresses = [to_bech32(ISSUER.address), to_bech32(HOLDER.address), contract]
    return {"hash": [t["hash"] for t in txs], "address": addresses, "owner": addresses,
            "spender": addresses, "symbol": ["PARK"], "height": [1, int(shouted["height"])],
            "function": ["shout", "get"]}


@pytest.fixture(scope="module")
def node_schema(smart_node: NodeProcess, seeded: dict[str, list[Any]]) -> Iterator[Any]:
    spec = requests.get(f"{smart_node.url}/openapi.json", timeout=10).json()
    bindings = {f"{where}.{name}": {"dictionary": name, "probability": 0.5}
                for name in seeded if name != "function"
                for where in (["path", "query"] if name == "owner" else ["path"])}
    bindings["body.function"] = {"dictionary": "function", "probability": 0.5}
    config = SchemathesisConfig.from_dict({
        "base-url": smart_node.url,
        "dictionaries": {name: {"values": values} for name, values in seeded.items()},
        "parameters": bindings,
    })
    yield schemathesis.openapi.from_dict(spec, config=config)
    assert smart_node.log_errors() == [], smart_node.log_tail()  # no traceback, no 5xx


@schemathesis.check
def keeps_the_json_contract(ctx: Any, response: Any, case: Any) -> None:
    """Beyond its schema, a JSON answer keeps docs/api.md's rules: an object, 64-bit
    numbers as strings, an error code from the closed list."""
    headers = {k.lower(): v for k, v in response.headers.items()}
    if not headers.get("content-type", [""])[0].startswith("application/json") or \
            case.operation.path in FILE_FORMATS:
        return
    found = violations(response.json())
    assert found == [], f"{case.operation.label}: {found[:5]}"


schema = schemathesis.pytest.from_fixture("node_schema")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, unsupported_method,
          keeps_the_json_contract]
# Documents in formats of their own (docs/api.md): genesis.json verbatim (a file people
# write by hand, its params integers) and the OpenAPI document (JSON Schema's numbers).
FILE_FORMATS = {"/v1/genesis", "/openapi.json"}
CODE_DECIDES = {"/v1/txs", "/v1/txs/simulate", "/v1/contracts/{address}/query"}


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms_to_the_openapi_document(case: Any,
                                                          smart_node: NodeProcess) -> None:
    checks = list(CHECKS)
    # A request the schema allows is accepted (2xx, or 404 for what does not exist), except
    # where code decides (a transaction's signature and nonce, a contract's functions: the
    # documented 400/422 answers) and for the coverage phase's boundary values (drawn from
    # patterns alone, which cannot carry a bech32 checksum).
    if case.operation.path not in CODE_DECIDES and case.meta.phase.name != TestPhase.COVERAGE:
        checks.append(positive_data_acceptance)
    case.call_and_validate(checks=checks, timeout=15)
