"""The state layer: overlays over LMDB, the bucket-tree state root and the Chain."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from smartchain.app import open_chain
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account, total_supply
from smartchain.modules.bank.types import ACCOUNT_PREFIX, SUPPLY_KEY
from smartchain.state.chain import Chain, ChainError
from smartchain.state.commitment import (
    DEPTH,
    StateProof,
    StateTree,
    verify_state_proof,
)
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay, StateReader, Store

# --- Overlay over a real LMDB StateReader ---------------------------------------------


def seed_store(store: Store, items: dict[bytes, bytes]) -> None:
    with store.write() as txn:
        for k, v in items.items():
            txn.put(k, v, db=store.dbs["state"])


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "db")
    seed_store(s, {b"a/1": b"one", b"a/3": b"three", b"a/5": b"five", b"b/1": b"other",
                   b"a": b"bare"})
    yield s
    s.close()


def test_overlay_get_set_delete(store: Store) -> None:
    reader = StateReader(store)
    try:
        ov = Overlay(reader)
        assert ov.get(b"a/1") == b"one"
        assert ov.get(b"missing") is None
        ov.set(b"a/1", b"uno")
        ov.set(b"new", b"n")
        ov.delete(b"a/3")
        assert ov.get(b"a/1") == b"uno"
        assert ov.get(b"new") == b"n"
        assert ov.get(b"a/3") is None
        # the reader underneath is untouched
        assert reader.get(b"a/1") == b"one"
        assert reader.get(b"a/3") == b"three"
        assert reader.get(b"new") is None
        ov.set(b"a/3", b"back")
        assert ov.get(b"a/3") == b"back"
    finally:
        reader.close()


def test_overlay_commit_to_parent_and_discard(store: Store) -> None:
    reader = StateReader(store)
    try:
        block = Overlay(reader)
        tx = Overlay(block)
        tx.set(b"a/1", b"changed")
        tx.delete(b"a/5")
        assert block.get(b"a/1") == b"one"  # not visible before commit
        tx.commit()
        assert tx.writes == {}
        assert block.get(b"a/1") == b"changed"
        assert block.get(b"a/5") is None
        assert block.writes == {b"a/1": b"changed", b"a/5": None}

        failed = Overlay(block)
        failed.set(b"a/1", b"reverted")
        del failed  # dropped: nothing reaches the block overlay
        assert block.get(b"a/1") == b"changed"

        with pytest.raises(TypeError):
            block.commit()  # the bottom overlay is committed by the chain
        assert reader.get(b"a/1") == b"one"
    finally:
        reader.close()


def test_overlay_iter_prefix_merges_in_key_order_hiding_deletions(store: Store) -> None:
    reader = StateReader(store)
    try:
        assert list(reader.iter_prefix(b"a/")) == [
            (b"a/1", b"one"), (b"a/3", b"three"), (b"a/5", b"five")]
        low = Overlay(reader)
        low.set(b"a/0", b"zero")
        low.set(b"a/3", b"THREE")
        low.delete(b"a/5")
        low.set(b"a/9", b"nine")
        low.set(b"c/1", b"outside")
        top = Overlay(low)
        top.set(b"a/2", b"two")
        top.delete(b"a/1")
        top.delete(b"a/7")  # deleting a key that exists nowhere
        top.set(b"a/5", b"resurrected")
        assert list(low.iter_prefix(b"a/")) == [
            (b"a/0", b"zero"), (b"a/1", b"one"), (b"a/3", b"THREE"), (b"a/9", b"nine")]
        assert list(top.iter_prefix(b"a/")) == [
            (b"a/0", b"zero"), (b"a/2", b"two"), (b"a/3", b"THREE"), (b"a/5", b"resurrected"),
            (b"a/9", b"nine")]
        assert list(top.iter_prefix(b"b/")) == [(b"b/1", b"other")]
        assert list(top.iter_prefix(b"zzz")) == []
    finally:
        reader.close()


def test_overlay_iter_prefix_matches_a_dict_model(tmp_path) -> None:
    """Random base contents and random overlay writes: the merge equals a plain dict."""
    rng = random.Random(7)
    s = Store(tmp_path / "model")
    try:
        keys = [b"p/" + bytes([rng.randrange(40)]) for _ in range(60)] + [b"q/x", b"o/x"]
        base = {k: rng.randbytes(3) for k in keys[:30]}
        seed_store(s, base)
        reader = StateReader(s)
        model = dict(base)
        ov = Overlay(reader)
        layers = [ov]
        for step in range(200):
            if step % 50 == 49:
                layers.append(Overlay(layers[-1]))
            top = layers[-1]
            k = rng.choice(keys)
            if rng.random() < 0.35:
                top.delete(k)
                model.pop(k, None)
            else:
                v = rng.randbytes(2)
                top.set(k, v)
                model[k] = v
            if step % 17 == 0:
                expect = sorted((k2, v2) for k2, v2 in model.items() if k2.startswith(b"p/"))
                assert list(layers[-1].iter_prefix(b"p/")) == expect
        for k in keys:
            assert layers[-1].get(k) == model.get(k)
        reader.close()
    finally:
        s.close()



def test_overlay_iter_prefix_matches_a_dict_model_through_reverts_and_commits(tmp_path) -> None:
    """Prefix scans bisect an index of written keys: reverted writes (a failed transaction),
    keys written again after a revert and nested commits must scan as a plain dict says."""
    rng = random.Random(11)
    s = Store(tmp_path / "revert")
    try:
        keys = [b"p/" + bytes([rng.randrange(30)]) for _ in range(40)] + [b"p", b"q/x", b"o/x"]
        seed_store(s, {k: b"base" for k in keys[:10]})
        reader = StateReader(s)
        block = Overlay(reader)
        model = {k: b"base" for k in keys[:10]}
        for _tx in range(60):
            scope = Overlay(block) if rng.random() < 0.3 else block
            mark, saved = scope.checkpoint(), dict(model)
            for _ in range(rng.randrange(1, 6)):
                k = rng.choice(keys)
                if rng.random() < 0.3:
                    scope.delete(k)
                    model.pop(k, None)
                else:
                    scope.set(k, v := rng.randbytes(2))
                    model[k] = v
                expect = sorted((k2, v2) for k2, v2 in model.items() if k2.startswith(b"p/"))
                assert list(scope.iter_prefix(b"p/")) == expect
            if rng.random() < 0.4:  # the transaction failed
                scope.revert_to(mark)
                model = saved
            elif scope is not block:
                scope.commit()
            expect = sorted((k2, v2) for k2, v2 in model.items() if k2.startswith(b"p/"))
            assert list(block.iter_prefix(b"p/")) == expect
        reader.close()
    finally:
        s.close()

class _CountingDict(dict[bytes, bytes | None]):
    """The overlay's writes, counting the lookups a scan makes."""

    reads = 0

    def get(self, *args: Any) -> Any:
        type(self).reads += 1
        return super().get(*args)


def test_the_first_entries_of_a_prefix_scan_cost_a_few_reads_however_much_the_block_wrote(
        store: Store) -> None:
    """A scan that stops after a few entries (an order that crosses nothing) used to copy
    every key the block had written under the prefix: N orders then M scans of one book in
    a block cost N x M, paid by nobody."""
    with StateReader(store) as reader:
        ov = Overlay(reader)
        for i in range(3_000):
            ov.set(b"p/" + i.to_bytes(4, "big"), b"v")
        ov.writes = _CountingDict(ov.writes)
        first = next(ov.iter_prefix(b"p/"))
        assert first == (b"p/" + bytes(4), b"v")
        assert _CountingDict.reads <= 4


def test_a_scan_paused_while_others_write_and_scan_goes_on_in_key_order(tmp_path) -> None:
    """Scans read the block's writes as they go: one left waiting while other scans sort
    newly written keys into the index resumes past the last key it gave, as a dict says
    (keys written before it reached them are seen, keys behind it are not revisited)."""
    rng = random.Random(3)
    s = Store(tmp_path / "paused")
    try:
        seed_store(s, {b"p/" + bytes([i]): b"base" for i in range(0, 200, 7)})
        with StateReader(s) as reader:
            ov = Overlay(reader)
            for i in range(0, 200, 3):
                ov.set(b"p/" + bytes([i]), b"w")
            scan = ov.iter_prefix(b"p/")
            seen = [next(scan)[0] for _ in range(10)]
            for _ in range(100):  # others write (more than the insort bound) and scan
                k = b"p/" + bytes([rng.randrange(200)])
                ov.set(k, b"x")
                list(ov.iter_prefix(b"p/"))
            seen += [k for k, _v in scan]
            assert seen == sorted(set(seen))
            model = {k for k, _v in ov.iter_prefix(b"p/")}
            assert {k for k in model if k > seen[9]} <= set(seen)
    finally:
        s.close()

# --- StateTree ------------------------------------------------------------------------


def tree_root_after(tmp_path, name: str, batches: list[dict[bytes, bytes | None]]) -> tuple:
    s = Store(tmp_path / name)
    tree = StateTree()
    try:
        for writes in batches:
            with s.write() as txn:
                update = tree.stage(txn, s.dbs["sidx"], writes)
                tree.write(txn, s.dbs, update)
            tree.install(update)
        reloaded = StateTree()
        with s.read() as txn:
            reloaded.load(txn, s.dbs["sleaf"])
        return tree.root, reloaded.root
    finally:
        s.close()


def test_state_root_independent_of_write_order(tmp_path) -> None:
    rng = random.Random(3)
    final = {f"key/{i}".encode(): rng.randbytes(8) for i in range(300)}
    items = list(final.items())

    root_a, reload_a = tree_root_after(tmp_path, "a", [dict(items)])
    rev = dict(reversed(items))
    root_b, reload_b = tree_root_after(tmp_path, "b", [rev])
    shuffled = items[:]
    rng.shuffle(shuffled)
    # several blocks, with values later overwritten and a key created then deleted
    batches: list[dict[bytes, bytes | None]] = [
        {k: b"old" for k, _ in shuffled[:150]} | {b"temp": b"gone soon"},
        dict(shuffled[100:]),
        dict(shuffled[:100]) | {b"temp": None},
    ]
    root_c, reload_c = tree_root_after(tmp_path, "c", batches)

    assert root_a == root_b == root_c
    assert reload_a == reload_b == reload_c == root_a
    assert root_a != StateTree().root

    changed = dict(items)
    changed[b"key/0"] = b"different"
    root_d, _ = tree_root_after(tmp_path, "d", [changed])
    assert root_d != root_a


def test_state_tree_delete_everything_returns_to_empty_root(tmp_path) -> None:
    empty = StateTree().root
    root, reloaded = tree_root_after(
        tmp_path, "e", [{b"x": b"1", b"y": b"2"}, {b"x": None, b"y": None}])
    assert root == reloaded == empty


def test_staging_leaves_the_tree_unchanged(tmp_path) -> None:
    s = Store(tmp_path / "u")
    try:
        tree = StateTree()
        with s.write() as txn:
            first = tree.stage(txn, s.dbs["sidx"], {b"a": b"1"})
            tree.write(txn, s.dbs, first)
        tree.install(first)
        before = tree.root
        with s.read() as txn:
            staged = tree.stage(txn, s.dbs["sidx"], {b"a": b"2", b"b": b"3"})
        assert staged.root != before
        assert tree.root == before  # staging (a proposal not yet decided) changes nothing
        with s.write() as txn:
            tree.write(txn, s.dbs, staged)
        tree.install(staged)
        assert tree.root == staged.root
        with s.read() as txn:
            reloaded = StateTree()
            reloaded.load(txn, s.dbs["sleaf"])
        assert reloaded.root == staged.root
    finally:
        s.close()


# --- Chain ----------------------------------------------------------------------------

def key_from_index(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL = key_from_index(1), key_from_index(2), key_from_index(3)
PROPOSER = key_from_index(9)
HPC = 10**8


def chain_genesis(kit, **kw):
    return kit.genesis({ALICE: 1_000 * HPC, BOB: 500 * HPC, CAROL: 7}, **kw)


def test_genesis_initialises_balances_supply_and_params(chainkit) -> None:
    gen = chain_genesis(chainkit)
    chain = chainkit.open(gen)
    assert chain.height == 0
    assert chain.latest is None
    assert chain.params == Params()
    r = chain.reader()
    try:
        assert get_account(r, ALICE.address).balance == 1_000 * HPC
        assert get_account(r, BOB.address).balance == 500 * HPC
        assert get_account(r, CAROL.address).balance == 7
        assert get_account(r, PROPOSER.address).balance == 0
        assert get_account(r, ALICE.address).nonce == 0
        # the genesis validator's self-stake (power 1: 1 HPC) is minted locked, and counted
        assert total_supply(r) == 1_501 * HPC + 7 == gen.supply()
        assert Params.decode(r.get(PARAMS_KEY)) == gen.params
    finally:
        r.close()


def make_blocks(kit, chain: Chain, n_blocks: int, seed: int):
    """Build ``n_blocks`` of random transfers; return [(block, state_root)] per block."""
    rng = random.Random(seed)
    keys = [ALICE, BOB, CAROL]
    r = chain.reader()
    nonces = {k.address: get_account(r, k.address).nonce for k in keys}
    r.close()
    out = []
    for h in range(chain.height + 1, chain.height + n_blocks + 1):
        raws = []
        for _ in range(rng.randrange(0, 6)):
            sender = rng.choice([ALICE, BOB])
            to = rng.choice([k.address for k in keys] + [PrivateKey.generate().address])
            raws.append(kit.transfer(sender, to, rng.randrange(1, 10 * HPC),
                                     nonces[sender.address]))
            nonces[sender.address] += 1
        checked = [kit.check(chain, raw) for raw in raws]
        block, receipts, skipped = chain.build_block(
            checked, chain.next_time(kit.genesis_time_ms + 1000 * h), PROPOSER)
        assert not skipped
        assert len(receipts) == len(raws)
        assert block.header.height == h == chain.height
        out.append((block, chain.state_root))
    return out


def test_blocks_replayed_on_second_chain_give_same_roots(chainkit) -> None:
    gen = chain_genesis(chainkit)
    a = chainkit.open(gen)
    b = chainkit.open(gen)
    assert a.state_root == b.state_root
    produced = make_blocks(chainkit, a, 6, seed=11)
    assert sum(len(block.txs) for block, _ in produced) > 5
    roots = [root for block, root in produced if block.txs]
    assert len(set(roots)) == len(roots)  # every block with transactions changes the state
    for block, root in produced:
        assert block.header.state_root == root
        checked = chainkit.checked_of_block(b, block.txs)
        receipts = b.apply_block(block, checked)
        assert all(r.ok for r in receipts)
        assert b.height == block.header.height
        assert b.state_root == root
        assert b.latest_hash == block.hash()
        assert b.get_block(b.height) == block
        assert b.height_of(block.hash()) == b.height
    for raw in produced[-1][0].txs:
        rec, tx = b.get_tx(h256(raw))
        assert tx.encode() == raw
        assert rec.height == b.height and rec.receipt.ok


def test_reopen_gives_same_height_and_root(chainkit, tmp_path) -> None:
    gen = chain_genesis(chainkit)
    path = tmp_path / "reopen"
    chain = chainkit.open(gen, path)
    make_blocks(chainkit, chain, 3, seed=5)
    height, root, latest = chain.height, chain.state_root, chain.latest_hash
    chainkit.close(chain)
    again = chainkit.open(gen, path)
    assert again.height == height == 3
    assert again.state_root == root
    assert again.latest_hash == latest
    # and it keeps going from there
    make_blocks(chainkit, again, 1, seed=6)
    assert again.height == 4


def test_state_proofs(chainkit) -> None:
    gen = chain_genesis(chainkit)
    chain = chainkit.open(gen)
    make_blocks(chainkit, chain, 2, seed=1)
    root = chain.state_root
    keys = [ACCOUNT_PREFIX + k.address for k in (ALICE, BOB, CAROL, PROPOSER)]
    keys += [SUPPLY_KEY, PARAMS_KEY]
    for key in keys:
        value, proof = chain.prove(key)
        assert value is not None
        assert len(proof.siblings) == DEPTH
        assert verify_state_proof(root, key, value, proof)
        assert verify_state_proof(root, key, value, StateProof.decode(proof.encode()))
        assert not verify_state_proof(root, key, value + b"\x00", proof)
        assert not verify_state_proof(root, key, b"\x00" * len(value), proof)
        assert not verify_state_proof(bytes(32), key, value, proof)
        assert not verify_state_proof(root, key + b"x", value, proof)
        bad = replace(proof, siblings=(bytes(32), *proof.siblings[1:]))
        assert not verify_state_proof(root, key, value, bad)
    # a key that is not in the state has no value to prove
    value, proof = chain.prove(ACCOUNT_PREFIX + bytes(20))
    assert value is None
    assert not verify_state_proof(root, ACCOUNT_PREFIX + bytes(20), b"", proof)


def prepare_pair(kit):
    """Chain A with one block built; chain B at genesis. Returns (a, b, block, checked)."""
    gen = chain_genesis(kit)
    a = kit.open(gen)
    b = kit.open(gen)
    raws = [kit.transfer(ALICE, BOB.address, 5 * HPC, 0), kit.transfer(BOB, CAROL.address, 1, 0)]
    block, _, _ = a.build_block([kit.check(a, r) for r in raws],
                                a.next_time(kit.genesis_time_ms + 1000), PROPOSER)
    return a, b, block, kit.checked_of_block(b, block.txs)


def resign(block, **header_changes):
    header = replace(block.header, **header_changes)
    return replace(block, header=header, signature=PROPOSER.sign(header.hash()))


def assert_unchanged(chain: Chain, height: int, root: bytes, latest: bytes) -> None:
    assert chain.height == height
    assert chain.state_root == root
    assert chain.latest_hash == latest
    assert chain.get_block(height + 1) is None
    # the tree in memory matches what is on disk
    with chain.store.read() as txn:
        reloaded = StateTree()
        reloaded.load(txn, chain.store.dbs["sleaf"])
    assert reloaded.root == root


def test_apply_block_rejects_tampered_state_root(chainkit) -> None:
    a, b, block, checked = prepare_pair(chainkit)
    before = (b.height, b.state_root, b.latest_hash)
    r = b.reader()
    bal_before = get_account(r, ALICE.address).balance
    r.close()
    bad = resign(block, state_root=bytes(32))
    with pytest.raises(ChainError, match="state root"):
        b.apply_block(bad, checked)
    assert_unchanged(b, *before)
    r = b.reader()
    try:
        assert get_account(r, ALICE.address).balance == bal_before
        assert get_account(r, ALICE.address).nonce == 0
    finally:
        r.close()
    # the genuine block still applies afterwards
    b.apply_block(block, checked)
    assert b.state_root == a.state_root and b.height == 1


def test_apply_block_rejects_bad_signature(chainkit) -> None:
    _, b, block, checked = prepare_pair(chainkit)
    before = (b.height, b.state_root, b.latest_hash)
    sig = bytearray(block.signature)
    sig[10] ^= 0x01
    with pytest.raises(ChainError, match="signature"):
        b.apply_block(replace(block, signature=bytes(sig)), checked)
    assert_unchanged(b, *before)
    other = key_from_index(77)  # signed by someone else, claiming to be the proposer
    forged = replace(block, signature=other.sign(block.header.hash()))
    with pytest.raises(ChainError, match="signature"):
        b.apply_block(forged, checked)
    assert_unchanged(b, *before)


def test_apply_block_rejects_wrong_height(chainkit) -> None:
    _, b, block, checked = prepare_pair(chainkit)
    before = (b.height, b.state_root, b.latest_hash)
    for height in (0, 2, 5):
        with pytest.raises(ChainError):
            b.apply_block(resign(block, height=height), checked)
        assert_unchanged(b, *before)
    b.apply_block(block, checked)
    with pytest.raises(ChainError):  # the same block again
        b.apply_block(block, checked)
    assert b.height == 1


def test_apply_block_rejects_other_tampering(chainkit) -> None:
    _, b, block, checked = prepare_pair(chainkit)
    before = (b.height, b.state_root, b.latest_hash)
    cases = [
        (resign(block, prev_hash=b"\x01" * 32), checked),
        (resign(block, chain_id="other-chain"), checked),
        (resign(block, receipts_root=bytes(32)), checked),
        (block, checked[:1]),  # transactions do not match tx_root
        (block, list(reversed(checked))),
    ]
    for bad_block, bad_checked in cases:
        with pytest.raises(ChainError):
            b.apply_block(bad_block, bad_checked)
        assert_unchanged(b, *before)


def test_different_genesis_on_existing_directory(chainkit, tmp_path) -> None:
    gen = chain_genesis(chainkit)
    path = tmp_path / "shared"
    chain = chainkit.open(gen, path)
    chainkit.close(chain)
    other = chain_genesis(chainkit, chain_id="another-chain")
    with pytest.raises(ChainError, match="different genesis") as first:
        open_chain(path, other)
    richer = chainkit.genesis({ALICE: 1})
    with pytest.raises(ChainError, match="different genesis") as second:
        open_chain(path, richer)
    # a refused open releases the LMDB environment at once (the exceptions, and the
    # half-built Chain their tracebacks reference, are still alive here), so the right
    # genesis can open the directory in the same process
    assert first.value is not None and second.value is not None
    again = chainkit.open(gen, path)
    assert again.height == 0
