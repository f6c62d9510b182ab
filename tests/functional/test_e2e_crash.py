"""End-to-end durability: SIGKILL a node under load, restart it, check nothing committed
was lost, nothing was committed twice, and the books still balance.

One real node process; transfers stream in from several threads through the HTTP API and
a few through the ``smart`` CLI as subprocesses. A poller learns, through
GET /v1/txs/{hash}, which accepted transactions are committed; those are the promises
the node made to clients, and each must survive the crash at the same height and index.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from framework.harness import NodeProcess, wait_until

from smartchain.app import open_chain
from smartchain.cli import keyring
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account, total_minted, total_supply
from smartchain.modules.bank.types import Transfer
from smartchain.modules.poca.types import MODULE_ACCOUNT as POCA_ACCOUNT
from smartchain.modules.rewards.types import MODULE_ACCOUNT as REWARDS_ACCOUNT
from smartchain.node.config import DATA_DIR
from smartchain.state.chain import Chain
from smartchain.state.emission import emitted_through
from smartchain.types.errors import Code
from smartchain.types.tx import Transaction

CHAIN_ID = "smart-crash-test-1"
HPC = 10**8
GENESIS_BALANCE = 1_000_000 * HPC
N_ACCOUNTS = 20
N_CLI = 2  # accounts 0..1 send only through the CLI
N_BATCH = 4  # accounts 2..5 only through POST /v1/txs/batch; the rest one tx per request
API_WORKERS = 3
BATCH_ROUNDS = 70  # a batch of 4 x 70 = 280 txs: above the node's in-process threshold
MAX_UNCONFIRMED = 400  # back-pressure: accepted but not yet seen committed
GAS_LIMIT = 20_000
CLI_AMOUNT = "0.0001"


def _key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_e2e_crash/%d" % i))


KEYS = [_key(i) for i in range(N_ACCOUNTS)]
ADDRS = [k.address for k in KEYS]
CLI_KEYS = KEYS[:N_CLI]
BATCH_KEYS = KEYS[N_CLI:N_CLI + N_BATCH]
API_KEYS = KEYS[N_CLI + N_BATCH:]


@dataclass
class Load:
    """Shared record of what the clients sent, what the node accepted and what it told
    them was committed. Guarded by ``lock``."""

    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    crashing: threading.Event = field(default_factory=threading.Event)
    attempted: set[str] = field(default_factory=set)  # every tx hash we ever sent
    senders: dict[str, bytes] = field(default_factory=dict)  # tx hash -> sender address
    accepted: dict[str, int] = field(default_factory=dict)  # hash -> acceptance order
    committed: dict[str, tuple[int, int]] = field(default_factory=dict)  # seen: (height, idx)
    blocks: dict[int, str] = field(default_factory=dict)  # height -> hash, as seen
    anomalies: list[str] = field(default_factory=list)
    batches: int = 0  # batches fully accepted

    def unconfirmed(self) -> int:
        with self.lock:
            return len(self.accepted) - len(self.committed)

    def note(self, what: str) -> None:
        """Unexpected behaviour; failures during the crash itself are expected."""
        if not self.crashing.is_set():
            with self.lock:
                self.anomalies.append(what)

    def accept(self, tx_hash: str) -> None:
        with self.lock:
            self.accepted[tx_hash] = len(self.accepted)


def sign(key: PrivateKey, nonce: int, to: bytes, amount: int) -> bytes:
    return Transaction.create(key, chain_id=CHAIN_ID, nonce=nonce, kind="bank/transfer",
                              payload=Transfer(to, amount).encode(), gas_limit=GAS_LIMIT,
                              gas_price=1).encode()


def pending_nonces(s: requests.Session, url: str, keys: list[PrivateKey]) -> dict[bytes, int]:
    """The next nonce of each key, as the node sees it (mempool included)."""
    nonces = {}
    for k in keys:
        r = s.get(f"{url}/v1/accounts/{to_bech32(k.address)}", timeout=10)
        r.raise_for_status()
        nonces[k.public_key] = r.json()["pending_nonce"]
    return nonces


def api_sender(load: Load, keys: list[PrivateKey], seed: int, limit: int | None = None) -> int:
    """Send transfers round-robin from ``keys`` until stopped (or ``limit`` each)."""
    rng = random.Random(seed)
    sent = 0
    with requests.Session() as s:
        nonces = pending_nonces(s, load.url, keys)
        rounds = 0
        while not load.stop.is_set() and (limit is None or rounds < limit):
            rounds += 1
            for k in keys:
                if load.unconfirmed() >= MAX_UNCONFIRMED:
                    wait_until(lambda: load.stop.is_set()
                               or load.unconfirmed() < MAX_UNCONFIRMED // 2, 30,
                               interval=0.01, what="the poller to catch up")
                if load.stop.is_set():
                    return sent
                to = rng.choice([a for a in ADDRS if a != k.address])
                raw = sign(k, nonces[k.public_key], to, rng.randint(1, 100_000))
                tx_hash = h256(raw).hex()
                with load.lock:
                    load.attempted.add(tx_hash)
                    load.senders[tx_hash] = k.address
                try:
                    r = s.post(f"{load.url}/v1/txs", data=raw, timeout=10,
                               headers={"Content-Type": "application/octet-stream"})
                except requests.RequestException as exc:
                    load.note(f"submit failed: {exc!r}")
                    return sent
                if r.status_code != 202:
                    load.note(f"submit refused: {r.status_code} {r.text}")
                    return sent
                assert r.json()["hash"] == tx_hash
                load.accept(tx_hash)
                nonces[k.public_key] += 1
                sent += 1
    return sent


def batch_sender(load: Load, keys: list[PrivateKey], seed: int, limit: int | None = None
                 ) -> int:
    """Send big batches through POST /v1/txs/batch (signatures checked by the node's
    worker processes), each sender's consecutive nonces in one batch."""
    rng = random.Random(seed)
    sent = 0
    with requests.Session() as s:
        nonces = pending_nonces(s, load.url, keys)
        while not load.stop.is_set() and (limit is None or load.batches < limit):
            wait_until(lambda: load.stop.is_set() or load.unconfirmed() < MAX_UNCONFIRMED // 2,
                       30, interval=0.01, what="the poller to catch up")
            if load.stop.is_set():
                break
            raws = []
            for k in keys:
                for _ in range(BATCH_ROUNDS):
                    to = rng.choice([a for a in ADDRS if a != k.address])
                    raws.append(sign(k, nonces[k.public_key], to, rng.randint(1, 100_000)))
                    nonces[k.public_key] += 1
            hashes = [h256(raw).hex() for raw in raws]
            with load.lock:
                load.attempted.update(hashes)
                for raw, tx_hash in zip(raws, hashes, strict=True):
                    load.senders[tx_hash] = Transaction.decode(raw).sender_address
            try:
                r = s.post(f"{load.url}/v1/txs/batch", json={"txs": [x.hex() for x in raws]},
                           timeout=30)
            except requests.RequestException as exc:
                load.note(f"batch failed: {exc!r}")
                break
            if r.status_code != 200:
                load.note(f"batch refused: {r.status_code} {r.text}")
                break
            results = r.json()["results"]
            assert len(results) == len(raws)
            for tx_hash, res in zip(hashes, results, strict=True):
                if res.get("hash") != tx_hash:
                    load.note(f"batch tx refused: {res}")
                    return sent
                load.accept(tx_hash)
                sent += 1
            with load.lock:
                load.batches += 1
    return sent


def poller(load: Load) -> None:
    """Learn, as a client would, which accepted transactions are committed."""
    with requests.Session() as s:
        while not load.stop.is_set():
            try:
                latest = s.get(f"{load.url}/v1/blocks/latest", timeout=10)
                if latest.status_code == 200:
                    b = latest.json()
                    with load.lock:
                        load.blocks[b["height"]] = b["hash"]
                with load.lock:
                    todo = sorted((h for h in load.accepted if h not in load.committed),
                                  key=load.accepted.__getitem__)
                for tx_hash in todo:
                    if load.stop.is_set():
                        return
                    r = s.get(f"{load.url}/v1/txs/{tx_hash}", timeout=10)
                    if r.status_code != 200:
                        load.note(f"accepted tx {tx_hash} -> {r.status_code} {r.text}")
                        break
                    doc = r.json()
                    if doc["status"] != "committed":
                        break  # later ones (mostly) arrived later: next pass
                    with load.lock:
                        load.committed[tx_hash] = (doc["height"], doc["index"])
                if not todo:
                    time.sleep(0.02)  # idle poll interval, not a synchronisation
            except requests.RequestException as exc:
                load.note(f"poll failed: {exc!r}")
                return


def cli(url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartchain.cli.main", "--node", url, *args],
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def cli_sender(load: Load, per_key: int) -> int:
    """A few transfers through ``smart tx transfer --no-wait --json``."""
    sent = 0
    for i in range(per_key):
        for n, key in enumerate(CLI_KEYS):
            to = to_bech32(ADDRS[(n + i + 5) % N_ACCOUNTS])
            p = cli(load.url, "tx", "transfer", "--from", f"cli{n}", "--to", to,
                    "--amount", CLI_AMOUNT, "--no-wait", "--json")
            assert p.returncode == 0, p.stderr + p.stdout
            doc = json.loads(p.stdout)
            assert doc["status"] == "pending", doc
            with load.lock:
                load.attempted.add(doc["hash"])
                load.senders[doc["hash"]] = key.address
            load.accept(doc["hash"])
            sent += 1
    return sent


@dataclass
class Running:
    load: Load
    pool: ThreadPoolExecutor
    futures: list[Future[int] | Future[None]]


def start_load(load: Load, *, cli_per_key: int, seed: int, api_limit: int | None = None,
               batch_limit: int | None = None) -> Running:
    pool = ThreadPoolExecutor(API_WORKERS + 3)
    futures: list[Future[int] | Future[None]] = [pool.submit(poller, load)]
    futures.append(pool.submit(batch_sender, load, BATCH_KEYS, seed - 1, batch_limit))
    for w in range(API_WORKERS):
        futures.append(pool.submit(api_sender, load, API_KEYS[w::API_WORKERS], seed + w,
                                   api_limit))
    if cli_per_key:
        futures.append(pool.submit(cli_sender, load, cli_per_key))
    return Running(load, pool, futures)


def finish(run: Running) -> None:
    run.load.stop.set()
    run.pool.shutdown(wait=True)
    for f in run.futures:
        f.result()  # re-raise any assertion from a thread


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cli"
    monkeypatch.setenv("SMART_HOME", str(home))
    for n, key in enumerate(CLI_KEYS):
        keyring.add(f"cli{n}", key, None, insecure=True)
    return home


@pytest.fixture
def crash_node(smart_node_factory: Callable[..., NodeProcess]) -> Iterator[NodeProcess]:
    yield smart_node_factory(accounts=[(a, GENESIS_BALANCE) for a in ADDRS], chain_id=CHAIN_ID)


def scan_blocks(s: requests.Session, url: str, height: int) -> list[str]:
    hashes: list[str] = []
    for h in range(1, height + 1):
        r = s.get(f"{url}/v1/blocks/{h}", timeout=10)
        assert r.status_code == 200, (h, r.text)
        hashes.extend(r.json()["txs"])
    return hashes


def test_sigkill_under_load_loses_nothing_committed(crash_node: NodeProcess, cli_home: Path,
                                                    tmp_path: Path) -> None:
    node = crash_node
    assert node.url
    load = Load(node.url)
    genesis_height = node.client.status()["height"]

    # --- phase 1: load, then SIGKILL mid-load --------------------------------------------
    run = start_load(load, cli_per_key=2, seed=1)
    try:
        cli_future = run.futures[-1]

        def enough_committed() -> bool:
            with load.lock:
                heights = {h for h, _ in load.committed.values()}
                n = len(load.committed)
            if not (len(heights) >= 4 and n >= 300 and cli_future.done()
                    and load.batches >= 2):
                return False
            # mid-load: the node holds accepted, uncommitted transactions right now
            return node.client.status()["mempool_size"] > 0

        wait_until(enough_committed, 45, interval=0.02, what="committed load before the kill")
        load.crashing.set()
        node.kill()  # while the senders and the poller are still running
    finally:
        finish(run)
    assert node.proc is not None and node.proc.returncode == -9
    # whatever processes the node had started must not outlive it
    wait_until(lambda: not node.orphans(), 10,
               what=f"the killed node's children {node.orphans()} to exit")
    assert load.anomalies == [], load.anomalies[:5]
    with load.lock:
        seen = dict(load.committed)
        seen_blocks = dict(load.blocks)
        accepted = dict(load.accepted)
    max_seen = max([h for h, _ in seen.values()] + list(seen_blocks))
    assert max_seen > genesis_height
    assert len({h for h, _ in seen.values()}) >= 4
    print(f"killed at seen height {max_seen}: {len(load.attempted)} sent, {len(accepted)} "
          f"accepted, {len(seen)} seen committed in {len({h for h, _ in seen.values()})} "
          f"blocks; {len(node.orphan_watch)} child processes of the node exited with it")

    # --- restart from the same home --------------------------------------------------------
    node.start()
    s = requests.Session()
    st = s.get(f"{node.url}/v1/status", timeout=10).json()
    assert st["height"] >= max_seen, "a height a client saw committed is gone"
    restart_height = st["height"]
    node.wait_for_height(restart_height + 3)

    # every commitment a client saw is still there, at the same place
    for tx_hash, (height, index) in seen.items():
        r = s.get(f"{node.url}/v1/txs/{tx_hash}", timeout=10)
        assert r.status_code == 200, (tx_hash, r.text)
        doc = r.json()
        assert (doc["status"], doc["height"], doc["index"]) == ("committed", height, index)
    for height, block_hash in seen_blocks.items():
        assert s.get(f"{node.url}/v1/blocks/{height}", timeout=10).json()["hash"] == block_hash

    # no tx twice, nothing we did not send, nonces match the committed txs
    height = s.get(f"{node.url}/v1/status", timeout=10).json()["height"]
    in_blocks = scan_blocks(s, node.url, height)
    assert len(in_blocks) == len(set(in_blocks)), "a transaction was committed twice"
    assert set(in_blocks) <= load.attempted
    assert set(seen) <= set(in_blocks)
    print(f"after restart: height {height}, {len(in_blocks)} txs committed, "
          f"{len(set(accepted) - set(in_blocks))} accepted txs lost with the mempool")
    # accepted but not committed before the crash: lost with the mempool, never half-there
    for tx_hash in set(accepted) - set(in_blocks):
        r = s.get(f"{node.url}/v1/txs/{tx_hash}", timeout=10)
        assert r.status_code == 404, (tx_hash, r.text)
    counts = Counter(load.senders[tx_hash] for tx_hash in in_blocks)
    for addr in ADDRS:
        acct = s.get(f"{node.url}/v1/accounts/{to_bech32(addr)}", timeout=10).json()
        assert acct["nonce"] == acct["pending_nonce"] == counts[addr], to_bech32(addr)

    # --- phase 2: the restarted node takes and commits new transfers ------------------------
    load2 = Load(node.url)
    run2 = start_load(load2, cli_per_key=0, seed=100, api_limit=3, batch_limit=1)
    try:
        for f in run2.futures[1:]:
            f.result(timeout=60)
        wait_until(lambda: load2.unconfirmed() == 0, 30, what="phase-2 txs committed")
    finally:
        finish(run2)
    assert load2.anomalies == [], load2.anomalies[:5]
    assert len(load2.accepted) == 3 * len(API_KEYS) + BATCH_ROUNDS * len(BATCH_KEYS)
    assert min(h for h, _ in load2.committed.values()) > restart_height
    p = cli(node.url, "tx", "transfer", "--from", "cli0", "--to", to_bech32(ADDRS[-1]),
            "--amount", CLI_AMOUNT, "--json")
    assert p.returncode == 0, p.stderr + p.stdout
    doc = json.loads(p.stdout)
    assert doc["status"] == "committed" and doc["receipt"]["ok"], doc
    assert doc["height"] > restart_height
    all_sent = load.attempted | load2.attempted | {doc["hash"]}

    # --- clean stop, then audit the stored chain directly ---------------------------------
    assert node.stop() == 0, node.log_tail()
    assert not node.runtime_path.exists()
    wait_until(lambda: not node.orphans(), 10,
               what=f"the stopped node's children {node.orphans()} to exit")
    assert node.log_errors() == [], node.log_errors()
    _audit_chain(node, all_sent, seen, tmp_path / "replica")
    s.close()


def _audit_chain(node: NodeProcess, sent: set[str], seen: dict[str, tuple[int, int]],
                 replica_dir: Path) -> None:
    """Audit the stored chain: its state root, a full re-execution on a fresh replica, and
    a replay of every receipt from genesis (balances, nonces, supply)."""
    genesis = node.genesis
    emission = genesis.emission()
    validator = node.key.address
    chain = open_chain(node.home / DATA_DIR, genesis)
    try:
        height = chain.height
        assert chain.latest is not None and chain.state_root == chain.latest.state_root
        _reexecute(chain, replica_dir)
        balances = {a.address: a.balance for a in genesis.accounts}
        balances[validator] = balances.get(validator, 0)
        nonces: Counter[bytes] = Counter()
        hashes: list[str] = []
        for h in range(1, height + 1):
            block = chain.get_block(h)
            assert block is not None, h
            assert block.header.height == h
            if h > 1:
                prev = chain.get_block(h - 1)
                assert prev is not None and block.header.prev_hash == prev.hash()
            for i, raw in enumerate(block.txs):
                tx = Transaction.decode(raw)
                tx_hash = h256(raw)
                found = chain.get_tx(tx_hash)
                assert found is not None
                rec, _ = found
                assert (rec.height, rec.index) == (h, i)
                assert tx.nonce == nonces[tx.sender_address], "nonce gap or repeat"
                nonces[tx.sender_address] += 1
                hashes.append(tx_hash.hex())
                receipt = rec.receipt
                assert receipt.code == Code.OK, receipt
                balances[tx.sender_address] -= receipt.fee
                balances[validator] += receipt.fee
                msg = Transfer.decode(tx.payload)
                balances[tx.sender_address] -= msg.amount
                balances[msg.to] = balances.get(msg.to, 0) + msg.amount
        assert len(hashes) == len(set(hashes))
        assert set(hashes) <= sent
        assert set(seen) <= set(hashes)
        reader = chain.reader()
        try:
            for addr, balance in balances.items():
                acct = get_account(reader, addr)
                assert acct.balance == balance, to_bech32(addr)
                assert acct.nonce == nonces[addr], to_bech32(addr)
            supply = total_supply(reader)
            minted = total_minted(reader)
            rewards = get_account(reader, REWARDS_ACCOUNT).balance  # minted, not withdrawn
            locked = get_account(reader, POCA_ACCOUNT).balance  # the genesis validator's stake
        finally:
            reader.close()
        assert set(balances) == set(ADDRS) | {validator}  # nobody else ever got HPC
        # block rewards are minted per epoch into the rewards module (docs/rewards.md)
        assert supply == genesis.supply() + minted and minted == rewards
        assert minted <= emitted_through(emission, height)
        assert sum(balances.values()) + rewards + locked == supply
    finally:
        chain.close()


def _reexecute(chain: Chain, replica_dir: Path) -> None:
    """Every stored block re-executes on a fresh chain from the same genesis to the same
    receipts and state roots (``apply_block`` checks signature, roots and linkage)."""
    replica = open_chain(replica_dir, chain.genesis)
    try:
        for h in range(1, chain.height + 1):
            block = chain.get_block(h)
            assert block is not None
            checked = [replica.executor.check_stateless(raw, Transaction.decode(raw), h256(raw),
                                                        replica.chain_id, replica.params)
                       for raw in block.txs]
            replica.apply_block(block, checked)
            assert replica.latest_hash == block.hash()
        assert replica.state_root == chain.state_root
    finally:
        replica.close()
