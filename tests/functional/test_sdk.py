"""The SDK against a real node process: the async client reads status, blocks and accounts,
sends a transfer and waits for it, gets the contract's errors; both clients see the same
typed documents; a compute job spec is posted from the SDK; and docs/sdk.md's examples run
as written."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from framework.harness import NodeProcess

from smartchain.aio import AsyncClient
from smartchain.client import Client
from smartchain.compute.jobspec import JobError, slice_bytes
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.sdk import ApiError
from smartchain.sdkcore import SimulationFailed
from smartchain.typed import Account, Block, Status, Tx

HPC = 10**8
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "compute"


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_sdk/" + tag.encode()))


ALICE, BOB, CAROL = _key("alice"), _key("bob"), _key("carol")
WORKERS = [_key("worker0"), _key("worker1")]
SMART_NODE_CHAIN_ID = "smart-sdk-test-1"
SMART_NODE_GENESIS = [(ALICE.address, 1_000 * HPC), (CAROL.address, 1_000 * HPC),
                      *((k.address, 100 * HPC) for k in WORKERS)]


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def url(smart_node: NodeProcess) -> str:
    assert smart_node.url is not None
    smart_node.wait_for_height(1)  # a first block to read
    return smart_node.url


def test_the_async_client_reads_status_block_and_account(url: str) -> None:
    async def main() -> tuple[Status, Block, Account, dict[str, Any]]:
        async with AsyncClient(url) as node:
            st = await node.typed.status()
            return (st, await node.typed.block(st.height), await node.typed.account(addr(ALICE)),
                    await node.status())

    st, block, account, doc = run(main())
    assert st.chain_id == SMART_NODE_CHAIN_ID and st.height >= 1 and st.min_gas_price >= 1
    assert doc["height"].isdigit()  # the untyped read is the contract's document
    assert block.height == st.height and len(block.hash) == 64
    assert account.address == addr(ALICE) and account.balance <= 1_000 * HPC


def test_the_async_client_sends_a_transfer_and_waits_for_it(url: str) -> None:
    async def main() -> tuple[dict[str, Any], Tx, Block, int]:
        async with AsyncClient(url) as node:
            sent = await node.transfer(ALICE, addr(BOB), 12_345)
            tx = await node.typed.tx(sent["hash"])
            assert tx.height is not None
            return sent, tx, await node.typed.block(tx.height), await node.balance(addr(BOB))

    sent, tx, block, bob = run(main())
    assert sent["status"] == "committed" and sent["receipt"]["ok"], sent
    assert tx.ok and tx.receipt is not None and tx.receipt.fee > 0
    assert (tx.kind, tx.sender, tx.payload["amount"]) == ("bank/transfer", addr(ALICE), "12345")
    assert tx.hash in [t.hash for t in block.transactions]
    assert bob == 12_345


def test_a_transaction_sent_without_waiting_is_awaited_later(url: str) -> None:
    async def main() -> Tx:
        async with AsyncClient(url) as node:
            pending = await node.transfer(CAROL, addr(BOB), 7, wait=False)
            assert pending["status"] == "pending"
            return await node.typed.wait_tx(pending["hash"])

    tx = run(main())
    assert tx.status == "committed" and tx.ok


def test_refusals_raise_the_contract_error_and_send_nothing(url: str) -> None:
    async def main() -> None:
        async with AsyncClient(url) as node:
            before = await node.typed.account(addr(ALICE))
            with pytest.raises(SimulationFailed) as refused:
                await node.transfer(ALICE, addr(BOB), 10**6 * HPC)
            assert refused.value.code == "insufficient_funds"
            with pytest.raises(ApiError) as bad:
                await node.account("smart1notanaddress")
            assert (bad.value.status, bad.value.code) == (400, "invalid_address")
            with pytest.raises(ApiError) as missing:
                await node.tx("00" * 32)
            assert (missing.value.status, missing.value.code) == (404, "not_found")
            after = await node.typed.account(addr(ALICE))
            assert (after.nonce, after.balance) == (before.nonce, before.balance)

    run(main())


def test_both_clients_read_the_same_typed_documents(url: str) -> None:
    sync = Client(url)
    height = sync.typed.status().height

    async def main() -> tuple[Block, Account]:
        async with AsyncClient(url) as node:
            return await node.typed.block(height), await node.typed.account(addr(ALICE))

    block, account = run(main())
    assert block == sync.typed.block(height)
    assert account == sync.typed.account(addr(ALICE))
    assert sync.typed.validators() and all(v.power > 0 for v in sync.typed.validators())


def test_a_job_spec_is_posted_from_the_sdk(url: str) -> None:
    sync = Client(url)
    for k in WORKERS:
        sync.register_compute_provider(k, capability=10**9, stake=20 * HPC)
    text = "one two three four five six"
    spec = {"module": "wordcount.wasm", "input": text,
            "slice": {"by": "bytes", "size": 8}, "redundancy": 2, "fuel_per_task": 1_000_000,
            "max_price_per_fuel": 1, "deadline_blocks": 50}

    async def main() -> int:
        async with AsyncClient(url) as node:
            return await node.compute.submit(ALICE, spec, base=EXAMPLES)

    job_id = run(main())
    job = sync.compute_job(job_id)
    assert (job["requester"], job["tasks"]) == (addr(ALICE), len(slice_bytes(text.encode(), 8)))
    assert sync.compute.submit(ALICE, EXAMPLES / "wordcount.toml") == job_id + 1
    with pytest.raises(JobError) as bad:  # refused before anything is signed
        sync.compute.submit(ALICE, {"module": "wordcount.wasm"}, base=EXAMPLES)
    assert bad.value.code == "invalid_spec"


# --- docs/sdk.md ------------------------------------------------------------------------------


def doc_examples(tag: str = "example") -> list[str]:
    """The Python blocks of docs/sdk.md marked ``<!-- {tag} -->``."""
    text = (ROOT / "docs" / "sdk.md").read_text()
    return re.findall(rf"<!-- {tag} -->\n```python\n(.*?)```", text, re.S)


def test_the_sdk_docs_examples_run(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    examples = doc_examples()
    assert len(examples) == 4
    before = Client(url).balance(addr(BOB))
    for code in examples:
        exec(compile(code, "docs/sdk.md", "exec"),
             {"NODE": url, "alice": ALICE, "bob": addr(BOB), "bob_key": BOB,
              "examples": EXAMPLES})
    assert Client(url).balance(addr(BOB)) == before + 150_000_000 + 1
    printed = capsys.readouterr().out
    assert SMART_NODE_CHAIN_ID in printed and "invalid_address" in printed
