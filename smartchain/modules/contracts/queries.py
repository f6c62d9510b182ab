"""The contracts module's HTTP queries: a deployed contract's record and source.

Running a contract function read-only (``POST /v1/contracts/{address}/query``) stays in
the API: it needs the node's query threads and watchdog, not just a state view.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.bank.module import get_account
from smartchain.modules.contracts.module import contract_info, contract_source
from smartchain.modules.query import (
    ADDRESS,
    HEX32,
    U64,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    ref,
)
from smartchain.state.store import StateReader
from smartchain.types.amount import format_hpc

TAG = "contracts"


def _contract(reader: StateReader, args: dict[str, Any]) -> Any:
    address = args["address"]
    info = contract_info(reader, address)
    if info is None:
        raise QueryError(404, "not_found", f"no contract at {to_bech32(address)}")
    source = contract_source(reader, address) or b""
    balance = get_account(reader, address).balance
    return {
        "address": to_bech32(address), "creator": to_bech32(info.creator),
        "height": str(info.height), "code_hash": info.code_hash.hex(), "code_size": info.code_size,
        "balance": str(balance), "balance_hpc": format_hpc(balance),
        "source": source.decode("utf-8", errors="replace"),
    }


API = ModuleApi(
    queries=(
        HttpQuery("/v1/contracts/{address}", "getContract", TAG,
                  "A contract's creator, code hash, HPC balance and source", _contract,
                  ref("Contract"), "contract", (Param("address", ADDRESS, parse_address),),
                  {400: "invalid address", 404: "no contract there"}),
    ),
    schemas={
        "Contract": {
            "type": "object",
            "required": ["address", "creator", "height", "code_hash", "code_size", "balance",
                         "source"],
            "properties": {
                "address": ADDRESS, "creator": ADDRESS,
                "height": {**U64, "description": "deployed at"},
                "code_hash": HEX32, "code_size": {"type": "integer"}, "balance": UNITS,
                "balance_hpc": {"type": "string"},
                "source": {"type": "string", "description": "the Lua source (invalid UTF-8 "
                                                            "shown as replacement characters)"},
            },
        },
    },
)
