"""The explorer a real node serves at / (HTML over HTTP), the paged list routes behind it and
the search box. What a browser does with the pages: test_explorer_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
from framework.harness import NodeProcess

from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.contracts.sdk import deployed_address
from smartchain.modules.data.types import asset_id_of
from smartchain.modules.devices.types import sign_certificate

HPC = 10**8


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_explorer/" + tag.encode()))


ALICE = _key("alice")
BOB = _key("bob")
MAKER = _key("maker")
CAR = _key("car")
SMART_NODE_GENESIS = [(ALICE.address, 1_000_000 * HPC), (MAKER.address, 1_000_000 * HPC)]
HOSTILE = "<script>window.__xss = 1</script>"  # a token name: at most 64 characters
SOURCE = (f'-- </pre>{HOSTILE}<img src=x onerror="window.__xss = 2">\n'
          "function echo(...) return ... end\n")


@pytest.fixture(scope="module")
def chain(smart_node: NodeProcess) -> dict[str, Any]:
    """What the pages show: a token with a hostile name, a contract with hostile source,
    five transfers ALICE -> BOB."""
    client = smart_node.client
    client.issue_token(ALICE, "EVIL", HOSTILE, 0, 1_000)
    deploy = client.deploy_contract(ALICE, SOURCE)
    sent = [client.transfer(ALICE, to_bech32(BOB.address), n * HPC) for n in range(1, 6)]
    return {"contract": deployed_address(deploy), "transfers": sent, "deploy": deploy,
            "asset": _data_asset(client), "proposal": _text_proposal(client)}


def _data_asset(client: Any) -> str:
    """ALICE's car (certified by MAKER) in a data asset she offers to anyone: its id."""
    params = client.genesis()["params"]
    assert client.register_manufacturer(
        MAKER, "Cars Ltd", int(params["devices_manufacturer_deposit"]))["receipt"]["ok"]
    cert = sign_certificate(MAKER, CAR.public_key, "roadster", "VIN-1", ["trips"])
    assert client.register_own_device(
        ALICE, CAR, str(client.status()["chain_id"]), to_bech32(MAKER.address), "roadster",
        "VIN-1", ["trips"], cert)["receipt"]["ok"]
    assert client.create_data_asset(ALICE, "my trips", "car.trips", "eu-west",
                                    [CAR.public_key],
                                    int(params["data_asset_bond"]))["receipt"]["ok"]
    asset = asset_id_of(ALICE.address, "my trips")
    assert client.give_consent(ALICE, [asset], ["insurance"], 3 * HPC,
                               10**9)["receipt"]["ok"]
    return asset.hex()


def _text_proposal(client: Any) -> str:
    deposit = int(client.genesis()["params"]["gov_min_deposit"])
    sent = client.propose_text(ALICE, title="Open the car data market", deposit=deposit)
    assert sent["receipt"]["ok"], sent["receipt"]["log"]
    return str(client.proposals()[0]["id"])


def get(node: NodeProcess, path: str, **kwargs: Any) -> requests.Response:
    r = requests.get(f"{node.url}{path}", timeout=10, **kwargs)
    assert r.status_code < 500, (path, r.status_code, r.text[:300])
    return r


def html(node: NodeProcess, path: str) -> str:
    r = get(node, path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("text/html")
    return r.text


def test_every_page_renders(smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    tx = chain["transfers"][0]
    pages = ["/", "/blocks", f"/blocks/{tx['height']}", f"/txs/{tx['hash']}",
             f"/accounts/{to_bech32(ALICE.address)}", "/validators", "/tokens", "/tokens/EVIL",
             "/contracts", f"/contracts/{chain['contract']}", "/storage", "/compute",
             "/market", "/market/book/weather.readings", "/devices", "/data",
             f"/data/assets/{chain['asset']}", "/gov", f"/gov/proposals/{chain['proposal']}"]
    for path in pages:
        assert "<main>" in html(smart_node, path), path


def test_a_data_asset_page_shows_its_terms_devices_and_consents(
        smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    """An asset with no batch yet is not on offer, but it is listed as registered."""
    listing = html(smart_node, "/data")
    assert f'href="/data/assets/{chain["asset"]}"' in listing and "my trips" in listing
    detail = html(smart_node, f"/data/assets/{chain['asset']}")
    for shown in ("car.trips", "eu-west", "roadster", "insurance", "anyone", "3 HPC"):
        assert shown in detail, shown


def test_a_proposal_page_shows_its_title_deposit_and_status(smart_node: NodeProcess,
                                                            chain: dict[str, Any]) -> None:
    assert "Open the car data market" in html(smart_node, "/gov")
    detail = html(smart_node, f"/gov/proposals/{chain['proposal']}")
    assert "Open the car data market" in detail and "voting" in detail


def test_user_controlled_text_is_escaped_never_markup(smart_node: NodeProcess,
                                                      chain: dict[str, Any]) -> None:
    for path in ("/tokens", "/tokens/EVIL", f"/contracts/{chain['contract']}",
                 f"/txs/{chain['deploy']['hash']}", f"/accounts/{to_bech32(ALICE.address)}"):
        page = html(smart_node, path)
        assert "<script>window" not in page and "<img" not in page, path
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in html(smart_node, "/tokens/EVIL")
    contract = html(smart_node, f"/contracts/{chain['contract']}")
    assert "-- &lt;/pre&gt;&lt;script&gt;" in contract  # the source, shown as text


def test_a_block_page_lists_its_transactions_and_links_them(
        smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    tx = chain["transfers"][2]
    page = html(smart_node, f"/blocks/{tx['height']}")
    assert f'href="/txs/{tx["hash"]}"' in page
    assert f'href="/accounts/{to_bech32(ALICE.address)}"' in page


def test_an_account_page_shows_its_balance_tokens_transactions_and_contracts(
        smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    page = html(smart_node, f"/accounts/{to_bech32(ALICE.address)}")
    assert 'href="/tokens/EVIL"' in page
    assert f'href="/contracts/{chain["contract"]}"' in page
    newest = chain["transfers"][-1]["hash"]
    assert f'href="/txs/{newest}"' in page
    balance = smart_node.client.account(to_bech32(ALICE.address))["balance_hpc"]
    assert f"{balance} HPC" in page


@pytest.mark.parametrize("what", ["height", "tx", "block_hash", "address", "contract",
                                  "symbol", "lower_symbol"])
def test_the_search_box_goes_to_what_it_names(smart_node: NodeProcess, chain: dict[str, Any],
                                              what: str) -> None:
    tx = chain["transfers"][0]
    block_hash = smart_node.client.block(tx["height"])["hash"]
    q, where = {
        "height": (str(tx["height"]), f"/blocks/{tx['height']}"),
        "tx": (tx["hash"], f"/txs/{tx['hash']}"),
        "block_hash": (block_hash, f"/blocks/{tx['height']}"),
        "address": (to_bech32(BOB.address), f"/accounts/{to_bech32(BOB.address)}"),
        "contract": (chain["contract"], f"/contracts/{chain['contract']}"),
        "symbol": ("EVIL", "/tokens/EVIL"),
        "lower_symbol": (" evil ", "/tokens/EVIL"),
    }[what]
    r = get(smart_node, "/search", params={"q": q}, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == where


@pytest.mark.parametrize("q", ["99999999", "0" * 64, "NOPE", "hello world"])
def test_a_search_that_finds_nothing_says_so(smart_node: NodeProcess, q: str) -> None:
    r = get(smart_node, "/search", params={"q": q})
    assert r.status_code == 404 and "nothing on this chain matches" in r.text
    assert get(smart_node, "/v1/search", params={"q": q}).json()["error"]["code"] == "not_found"


def test_blocks_come_in_pages_newest_first_without_overlap(smart_node: NodeProcess,
                                                           chain: dict[str, Any]) -> None:
    first = get(smart_node, "/v1/blocks", params={"limit": 3}).json()
    second = get(smart_node, "/v1/blocks",
                 params={"limit": 3, "cursor": first["next_cursor"]}).json()
    heights = [int(b["height"]) for b in first["blocks"] + second["blocks"]]
    assert heights == list(range(heights[0], heights[0] - 6, -1))
    last = get(smart_node, "/v1/blocks", params={"limit": 100, "cursor": "3"}).json()
    assert [b["height"] for b in last["blocks"]] == ["2", "1"] and "next_cursor" not in last


def test_an_account_s_transactions_come_in_pages_newest_first(
        smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    client = smart_node.client
    seen: list[str] = []
    cursor = None
    while True:
        page = client.account_txs(to_bech32(BOB.address), limit=2, cursor=cursor)
        seen += [t["hash"] for t in page["txs"]]
        assert all(t["role"] == "party" for t in page["txs"])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert seen == [t["hash"] for t in reversed(chain["transfers"])]


def test_a_block_document_includes_its_transactions_summaries(
        smart_node: NodeProcess, chain: dict[str, Any]) -> None:
    tx = chain["transfers"][1]
    doc = smart_node.client.block(tx["height"])
    (summary,) = [t for t in doc["transactions"] if t["hash"] == tx["hash"]]
    assert summary["sender"] == to_bech32(ALICE.address) and summary["ok"] is True
    assert summary["payload"]["to"] == to_bech32(BOB.address)
    assert summary["height"] == str(tx["height"]) and summary["fee"] == tx["receipt"]["fee"]


BAD_LISTS = [
    ("/v1/blocks?limit=0", "malformed"), ("/v1/blocks?limit=101", "malformed"),
    ("/v1/blocks?limit=x", "malformed"), ("/v1/blocks?cursor=-1", "malformed"),
    (f"/v1/accounts/{to_bech32(BOB.address)}/txs?cursor=1", "malformed"),
    (f"/v1/accounts/{to_bech32(BOB.address)}/txs?cursor=1-2-3", "malformed"),
    ("/v1/accounts/smart1nope/txs", "invalid_address"),
    ("/v1/events", "malformed"), ("/v1/events?kind=x&where=to", "malformed"),
    ("/v1/events?kind=x&cursor=1-2", "malformed"), ("/v1/search", "malformed"),
]


@pytest.mark.parametrize(("path", "code"), BAD_LISTS)
def test_bad_paging_and_search_parameters_are_a_400(smart_node: NodeProcess, path: str,
                                                    code: str) -> None:
    r = get(smart_node, path)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text


def test_a_node_without_the_index_says_so_and_still_shows_its_pages(
        smart_node_factory: Callable[..., NodeProcess]) -> None:
    node = smart_node_factory(start=False, accounts=[(ALICE.address, 10 * HPC)])
    node.config.api.index = False
    node.config.save(node.home)
    node.start()
    r = get(node, f"/v1/accounts/{to_bech32(ALICE.address)}/txs")
    assert r.status_code == 404 and r.json()["error"]["code"] == "index_disabled"
    page = html(node, f"/accounts/{to_bech32(ALICE.address)}")
    assert "this node keeps no search index" in page
    assert re.search(r"10(\.0+)? HPC", page)
    node.stop()
