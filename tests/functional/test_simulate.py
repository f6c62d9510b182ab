"""``POST /v1/txs/simulate`` and automatic gas, against one real node process.

A simulation runs the transaction as the next block would, on a throw-away copy of the
latest state: the gas it reports is the gas the committed receipt shows, a failure is
reported without anything changing, and bad input is a 4xx JSON error.
"""

from __future__ import annotations

from typing import Any

import pytest
from framework.harness import NodeProcess
from test_api import Api, Snapshot, snapshot

from smartchain.client import Client, SimulationFailed, deployed_address
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.contracts.types import Arg, Call
from smartchain.modules.tokens.types import TokenTransfer
from smartchain.state.params import Params
from smartchain.types.tx import Transaction

SMART_NODE_CHAIN_ID = "smart-simulate-test-1"
HPC = 10**8
PARAMS = Params()


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_simulate/" + tag.encode()))


ALICE, BOB, CAROL, ISSUER = _key("alice"), _key("bob"), _key("carol"), _key("issuer")
NOBODY = _key("nobody")  # never funded
SMART_NODE_GENESIS = [(k.address, 1_000 * HPC) for k in (ALICE, BOB, ISSUER)]

COUNTER = b"""
function bump(n)
  local total = (storage.get("total") or 0) + n
  storage.set("total", total)
  emit("bumped", {total = tostring(total)})
  return total
end
function fail(why) error(why) end
"""


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


@pytest.fixture(scope="module")
def client(smart_node: NodeProcess) -> Client:
    return smart_node.client


def unsigned(key: PrivateKey, kind: str, payload: bytes, *, nonce: int = 0,
             gas_limit: int = 0, chain_id: str = SMART_NODE_CHAIN_ID) -> bytes:
    return Transaction(chain_id, key.public_key, nonce, gas_limit, PARAMS.min_gas_price, kind,
                       payload, bytes(64)).encode()


def simulate(api: Api, raw: bytes, **flags: str) -> dict[str, Any]:
    r = api.post("/v1/txs/simulate", json={"tx": raw.hex(), **flags})
    assert r.status_code == 200, r.text
    return r.json()


def committed_as_simulated(api: Api, client: Client, key: PrivateKey, kind: str,
                           payload: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate the signed transaction, then submit those very bytes: (simulation, receipt)."""
    nonce = int(api.account(key)["pending_nonce"])
    raw = Transaction.create(key, chain_id=SMART_NODE_CHAIN_ID, nonce=nonce, kind=kind,
                             payload=payload, gas_limit=PARAMS.max_tx_gas // 10,
                             gas_price=PARAMS.min_gas_price).encode()
    sim = simulate(api, raw)
    assert sim["ok"] is True, sim
    receipt = client.wait_tx(client.submit(raw))["receipt"]
    return sim, receipt


def test_a_simulated_transfer_uses_the_gas_its_committed_receipt_shows(
        api: Api, client: Client) -> None:
    payload = Transfer(CAROL.address, 12_345).encode()
    sim, receipt = committed_as_simulated(api, client, ALICE, "bank/transfer", payload)
    assert sim["gas_used"] == receipt["gas_used"] and int(sim["gas_used"]) > PARAMS.tx_base_gas
    assert sim["events"] == receipt["events"] and sim["code_name"] == "ok"
    # unsigned, with the nonce and gas limit filled in: the same gas
    blank = simulate(api, unsigned(ALICE, "bank/transfer", payload), nonce="next",
                     gas_limit="max")
    assert blank["ok"] is True and blank["gas_used"] == receipt["gas_used"]
    assert blank["nonce"] == api.account(ALICE)["nonce"]
    want = str(int(receipt["gas_used"]) * 6 // 5 + 5_000)
    assert blank["gas_wanted"] == want


def test_a_simulated_token_transfer_and_contract_call_use_their_committed_gas(
        api: Api, client: Client) -> None:
    issued = client.issue_token(ISSUER, "SIMU", "Simulated", 2, 10_000)  # automatic gas
    assert issued["receipt"]["ok"], issued["receipt"]
    payload = TokenTransfer("SIMU", BOB.address, 250).encode()
    sim, receipt = committed_as_simulated(api, client, ISSUER, "tokens/transfer", payload)
    assert sim["gas_used"] == receipt["gas_used"] and sim["events"] == receipt["events"]
    assert client.token_balance("SIMU", addr(BOB)) == 250

    contract = deployed_address(client.deploy_contract(ISSUER, COUNTER))  # automatic gas
    for n in (5, 7):  # the second call finds a total in storage: different gas
        done = client.call_contract(ISSUER, contract, "bump", [n])  # automatic gas
        assert done["receipt"]["ok"], done["receipt"]
    call = Call(from_bech32(contract), "bump", (Arg.of(3),), 0)
    sim, receipt = committed_as_simulated(api, client, ISSUER, "contracts/call", call.encode())
    assert sim["gas_used"] == receipt["gas_used"]
    assert sim["events"] == receipt["events"]
    assert receipt["events"][-1]["attributes"]["total"] == "15"


def test_a_failing_transaction_reports_its_error_and_changes_nothing(
        api: Api, client: Client) -> None:
    before: Snapshot = snapshot(api, BOB)
    carol = api.account(CAROL)
    too_much = Transfer(CAROL.address, 10_000 * HPC).encode()
    sim = simulate(api, unsigned(BOB, "bank/transfer", too_much), nonce="next",
                   gas_limit="max")
    assert sim["ok"] is False and sim["code_name"] == "insufficient_funds", sim
    assert "insufficient" in sim["log"] and sim["events"] == []
    # the SDK does not send what would fail, and says why
    with pytest.raises(SimulationFailed) as caught:
        client.transfer(BOB, addr(CAROL), 10_000 * HPC)
    assert caught.value.code == "insufficient_funds"
    # a dry run of a good one sends nothing either
    dry = client.transfer(BOB, addr(CAROL), 1, dry_run=True)
    assert dry["status"] == "simulated" and dry["ok"] is True
    assert snapshot(api, BOB) == before and api.account(CAROL) == carol


def test_a_simulation_is_refused_as_submission_would_be(api: Api, client: Client) -> None:
    before = snapshot(api, ALICE)
    payload = Transfer(CAROL.address, 1).encode()
    bad_sig = bytearray(Transaction.create(
        ALICE, chain_id=SMART_NODE_CHAIN_ID, nonce=before.nonce, kind="bank/transfer",
        payload=payload, gas_limit=100_000, gas_price=PARAMS.min_gas_price).encode())
    bad_sig[-1] ^= 1
    cases = [
        (unsigned(ALICE, "bank/transfer", payload, chain_id="other"), {}, 422, "wrong_chain"),
        (bytes(bad_sig), {}, 422, "bad_signature"),
        (unsigned(ALICE, "bank/transfer", payload, gas_limit=100_000, nonce=before.nonce + 5),
         {}, 422, "nonce_skipped"),
        (unsigned(NOBODY, "bank/transfer", payload), {"nonce": "next", "gas_limit": "max"},
         422, "insufficient_funds"),
        (unsigned(ALICE, "no/such", payload, gas_limit=100_000), {}, 422, "unknown_kind"),
    ]
    for raw, flags, status, code in cases:
        r = api.post("/v1/txs/simulate", json={"tx": raw.hex(), **flags})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (code, r.text)
    assert snapshot(api, ALICE) == before


@pytest.mark.parametrize("body", [
    {}, [], {"tx": 5}, {"tx": "zz"}, {"tx": "00"}, {"tx": ""},
    {"tx": "00" * 200, "nonce": "latest"}, {"tx": "00" * 200, "gas_limit": 10},
])
def test_malformed_simulation_requests_get_400(api: Api, body: Any) -> None:
    r = api.post("/v1/txs/simulate", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed"


def test_sdk_methods_default_to_automatic_gas(api: Api, client: Client) -> None:
    done = client.transfer(ALICE, addr(CAROL), 77)
    assert done["receipt"]["ok"]
    sim_gas = int(done["receipt"]["gas_used"])
    assert int(done["gas_limit"]) == sim_gas * 6 // 5 + 5_000  # what the simulation wanted
