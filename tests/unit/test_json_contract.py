"""The JSON contract (docs/api.md): the closed list of error codes is the only one the
code uses, and the checker the functional tests rely on catches what it should."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from smartchain.api.openapi import openapi_spec
from smartchain.jsoncontract import ERROR_CODES, is_wide, violations
from smartchain.types.errors import Code

ROOT = Path(__file__).resolve().parents[2] / "smartchain"
# Exception classes whose call names an error code, and the argument that holds it.
CODE_ARG = {"QueryError": 1, "ApiError": 1, "CliError": 1, "KeyringError": 1,
            "error_response": 1, "_fail": 1, "_refuse": 1}


def _codes_in_source() -> dict[str, list[str]]:
    """Every literal error code passed to the classes above, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name not in CODE_ARG:
                continue
            args = list(node.args)
            given = args[CODE_ARG[name]] if len(args) > CODE_ARG[name] else next(
                (k.value for k in node.keywords if k.arg == "code"), None)
            if isinstance(given, ast.Constant) and isinstance(given.value, str):
                found.setdefault(given.value, []).append(
                    f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return found


def test_every_error_code_the_code_raises_is_in_the_closed_list() -> None:
    used = _codes_in_source()
    assert len(used) > 20  # the scan found the raising sites
    unknown = {code: where for code, where in used.items() if code not in ERROR_CODES}
    assert unknown == {}


def test_the_closed_list_holds_every_transaction_code_and_no_class_names() -> None:
    assert {c.slug for c in Code if c is not Code.OK} <= set(ERROR_CODES)
    assert all(code.islower() and code.replace("_", "").isalpha() for code in ERROR_CODES)


def test_the_openapi_error_schema_enumerates_the_closed_list() -> None:
    error = openapi_spec()["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["properties"]["code"]["enum"] == sorted(ERROR_CODES)


@pytest.mark.parametrize("name", ["height", "nonce", "pending_nonce", "gas_used", "fee",
                                  "latest_time_ms", "storage_epoch_blocks", "min_gas_price",
                                  "voting_end", "submit_height", "balance", "power"])
def test_64_bit_quantities_are_recognised_by_name(name: str) -> None:
    assert is_wide(name)


@pytest.mark.parametrize("name", ["index", "tx_count", "decimals", "storage_slash_bps",
                                  "code_size", "event_index", "peers", "round", "code",
                                  "missed_blocks"])
def test_small_counts_are_not(name: str) -> None:
    assert not is_wide(name)


def test_the_checker_flags_bare_lists_integer_heights_unknown_codes_and_big_numbers() -> None:
    assert violations([1, 2]) == ["the document is list, not an object"]
    assert violations({"blocks": [{"height": 5, "tx_count": 2}]}) == [
        "$.blocks[0].height = 5 is a 64-bit quantity: it must be a string"]
    assert violations({"error": {"code": "KeyringError", "message": "x"}}) == [
        "$.error.code 'KeyringError' is not in the closed list"]
    assert violations({"counts": [2**60]}) == ["$.counts[0] = 1152921504606846976 is "
                                               "beyond 2^53: it must be a string"]
    assert violations({"height": "5", "index": 0, "error_free": True}) == []


def test_contract_values_keep_their_own_types() -> None:
    assert violations({"ok": True, "gas_used": "9", "results": [2**63 - 1, "x"]}) == []
