"""Signatures, bech32 addresses, Merkle proofs and key files."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace

import bech32 as bech32_lib
import nacl.pwhash
import pytest

from smartchain.crypto import keystore
from smartchain.crypto.address import (
    HRP,
    AddressError,
    address_of,
    from_bech32,
    is_address,
    to_bech32,
)
from smartchain.crypto.hashing import h160, h256, h256_tagged
from smartchain.crypto.keys import (
    SMALL_ORDER_KEYS,
    ParallelVerifier,
    PrivateKey,
    is_small_order,
    verify,
    verify_many,
)
from smartchain.crypto.merkle import (
    EMPTY_ROOT,
    MerkleProof,
    leaf_hash,
    merkle_root,
    node_hash,
    prove,
    root_of_hashes,
    verify_proof,
)

FAST_OPS = nacl.pwhash.argon2id.OPSLIMIT_MIN
FAST_MEM = nacl.pwhash.argon2id.MEMLIMIT_MIN


def flip_bit(data: bytes, bit: int) -> bytes:
    buf = bytearray(data)
    buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


# --- hashing --------------------------------------------------------------------------


def test_hash_sizes_and_domain_separation() -> None:
    assert len(h256(b"x")) == 32
    assert len(h160(b"x")) == 20
    assert h256(b"x") != h256(b"y")
    assert h256_tagged(b"a", b"x") != h256_tagged(b"b", b"x")
    assert h256_tagged(b"a", b"x", b"y") == h256_tagged(b"a", b"xy")
    assert leaf_hash(b"x" * 64) != node_hash(b"x" * 32, b"x" * 32)


# --- signatures -----------------------------------------------------------------------


def test_sign_verify() -> None:
    key = PrivateKey.from_seed(bytes(range(32)))
    msg = b"pay 5 HPC to bob"
    sig = key.sign(msg)
    assert len(sig) == 64
    assert verify(key.public_key, msg, sig)
    assert PrivateKey.from_seed(bytes(range(32))).public_key == key.public_key  # deterministic
    assert key.address == address_of(key.public_key) == h160(key.public_key)


def test_verify_rejects_wrong_message_key_and_flipped_bits() -> None:
    key = PrivateKey.generate()
    other = PrivateKey.generate()
    msg = b"message"
    sig = key.sign(msg)
    assert not verify(key.public_key, b"messagf", sig)
    assert not verify(key.public_key, msg + b"\x00", sig)
    assert not verify(other.public_key, msg, sig)
    for bit in range(0, 512, 7):
        assert not verify(key.public_key, msg, flip_bit(sig, bit)), bit
    for bit in range(0, len(msg) * 8, 3):
        assert not verify(key.public_key, flip_bit(msg, bit), sig), bit
    for bit in range(0, 256, 11):
        assert not verify(flip_bit(key.public_key, bit), msg, sig), bit


def test_verify_rejects_malformed_inputs_without_raising() -> None:
    key = PrivateKey.generate()
    sig = key.sign(b"m")
    assert not verify(key.public_key[:31], b"m", sig)
    assert not verify(key.public_key, b"m", sig[:63])
    assert not verify(key.public_key, b"m", bytes(64))


def test_verify_many_and_parallel_verifier_agree_with_verify() -> None:
    keys = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(8)]
    items = []
    for i in range(600):
        k = keys[i % len(keys)]
        msg = i.to_bytes(4, "big")
        sig = k.sign(msg)
        if i % 5 == 0:
            sig = flip_bit(sig, i % 512)
        items.append((k.public_key, msg, sig))
    expected = [verify(*item) for item in items]
    assert expected.count(False) == 120
    assert verify_many(items) == expected
    pv = ParallelVerifier(workers=2, threshold=64)
    try:
        assert pv.verify(items) == expected
    finally:
        pv.close()


# --- small-order public keys (red-team finding 10) -------------------------------------
# A small-order key A has [8]A = identity, so the ZIP-215 (cofactored) equation
# [8]sB = [8]R + [8]kA holds for s = 0 and a small-order R whatever the message: anybody
# can "sign" for it. The curve arithmetic below derives the 8 small-order points from
# first principles, independently of the list in smartchain.crypto.keys.

_P = 2**255 - 19
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_L = 2**252 + 27742317777372353535851937790883648493  # order of the prime subgroup
_IDENTITY = (0, 1)
FORGED = (1).to_bytes(32, "little") + bytes(32)  # R = identity, s = 0


def _decode(enc: bytes) -> tuple[int, int] | None:
    """ZIP-215 point decoding: y may be non-canonical (>= p), x = 0 may carry a sign."""
    n = int.from_bytes(enc, "little")
    sign, y = n >> 255, (n & ((1 << 255) - 1)) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    return ((-x) % _P if x & 1 != sign else x), y


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = a, b
    t = _D * x1 * x2 * y1 * y2 % _P
    return ((x1 * y2 + y1 * x2) * pow(1 + t, -1, _P) % _P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, _P) % _P)


def _mul(k: int, point: tuple[int, int]) -> tuple[int, int]:
    out = _IDENTITY
    while k:
        if k & 1:
            out = _add(out, point)
        point = _add(point, point)
        k >>= 1
    return out


def _small_order_encodings() -> set[bytes]:
    """Every 32-byte string ZIP-215 decodes to a point of order dividing 8."""
    y = 2
    while True:  # [L]Q is the torsion part of Q: find a Q whose torsion part has order 8
        q = _decode(y.to_bytes(32, "little"))
        t8 = _mul(_L, q) if q else _IDENTITY
        if _mul(4, t8) != _IDENTITY:
            break
        y += 1
    torsion = {_mul(k, t8) for k in range(8)}
    assert len(torsion) == 8 and all(_mul(8, t) == _IDENTITY for t in torsion)
    encodings = set()
    for _, ty in torsion:
        for yy in (ty, ty + _P):
            for sign in (0, 1):
                enc = (yy | sign << 255).to_bytes(32, "little") if yy < 2**255 else None
                if enc is not None and _decode(enc) in torsion:
                    encodings.add(enc)
    return encodings


def test_the_small_order_blocklist_is_every_encoding_of_every_small_order_point() -> None:
    derived = _small_order_encodings()
    assert derived == SMALL_ORDER_KEYS
    assert len(derived) == 14  # 8 points; some y have a second (non-canonical) spelling
    assert all(is_small_order(k) for k in derived)
    assert not is_small_order(PrivateKey.generate().public_key)


def test_forged_signatures_for_small_order_keys_fail_single_and_batch_verification() -> None:
    import ed25519_zebra

    honest = PrivateKey.from_seed(b"\x07" * 32)
    items = []
    for i, key in enumerate(sorted(SMALL_ORDER_KEYS)):
        msg = b"send 0.5 HPC to mallory #%d" % i
        assert ed25519_zebra.ed_verify(FORGED, msg, key), "bare ZIP-215 accepts the forgery"
        assert not verify(key, msg, FORGED)
        items.append((key, msg, FORGED))
        items.append((honest.public_key, msg, honest.sign(msg)))
    items *= 10  # 280: above the threshold, so the worker processes check them too
    expected = [pk == honest.public_key for pk, _, _ in items]
    assert verify_many(items) == expected
    pv = ParallelVerifier(workers=2, threshold=64)
    try:
        assert pv.verify(items) == expected
    finally:
        pv.close()


def test_node_refuses_a_forged_transfer_from_a_small_order_key(tmp_path) -> None:
    """Mempool (single and batch admission) and block validation alike."""
    from smartchain.app import open_chain
    from smartchain.modules.bank.types import Transfer
    from smartchain.node.bft import ChainApplication
    from smartchain.node.config import NodeConfig
    from smartchain.node.home import make_genesis
    from smartchain.node.node import Node
    from smartchain.types.amount import UNITS_PER_HPC
    from smartchain.types.errors import Code, TxError
    from smartchain.types.tx import Transaction

    victim = next(k for k in sorted(SMALL_ORDER_KEYS) if k[0] == 0x26)  # an order-8 point
    thief, validator = PrivateKey.generate(), PrivateKey.generate()
    genesis = make_genesis("smart-test-1", [(validator.public_key, 1, "v0")],
                           accounts=[(address_of(victim), 10 * UNITS_PER_HPC)])
    raw = Transaction("smart-test-1", victim, 0, 100_000, 1, "bank/transfer",
                      Transfer(thief.address, UNITS_PER_HPC // 2).encode(), FORGED).encode()
    node = Node(tmp_path / "node", PrivateKey.generate(), NodeConfig(), genesis)
    maker = open_chain(tmp_path / "maker", genesis)
    try:
        with pytest.raises(TxError) as refused:
            node.submit(raw)
        assert refused.value.code == Code.BAD_SIGNATURE
        results = node.submit_many([raw] * 300)  # a batch for the worker processes
        assert all(isinstance(r, TxError) and r.code == Code.BAD_SIGNATURE for r in results)
        assert len(node.mempool) == 0

        # A proposer that does not check signatures puts it in a block: refused as well.
        staged = maker.stage_proposal([node.decode_checked(raw)], genesis.time_ms + 1,
                                      validator)
        assert [c.raw for c in staged.included] == [raw]
        with pytest.raises(TxError) as refused:
            node.check_block_txs(staged.block)
        assert refused.value.code == Code.BAD_SIGNATURE
        assert not ChainApplication(node).validate(1, staged.block.encode())
        assert node.chain.height == 0
    finally:
        node.close()
        maker.close()


def test_private_key_repr_hides_seed() -> None:
    key = PrivateKey.from_seed(b"\xab" * 32)
    assert "ab" * 32 not in repr(key)
    with pytest.raises(ValueError):
        PrivateKey.from_seed(b"short")


# --- bech32 addresses -----------------------------------------------------------------


ADDRS = [bytes(20), b"\xff" * 20, bytes(range(20)), h160(b"alice")]


@pytest.mark.parametrize("addr", ADDRS)
def test_bech32_round_trip(addr: bytes) -> None:
    text = to_bech32(addr)
    assert text.startswith(HRP + "1")
    assert HRP == "smart"
    assert text == text.lower()
    assert from_bech32(text) == addr
    assert is_address(text)


def test_bech32_every_single_character_change_fails() -> None:
    text = to_bech32(h160(b"alice"))
    charset = bech32_lib.CHARSET
    sep = text.rfind("1")
    changed = 0
    for i in range(len(text)):
        if i == sep:
            continue
        alphabet = charset if i > sep else "abcdefghijklmnopqrstuvwxyz0123456789"
        for c in alphabet:
            if c == text[i]:
                continue
            mutated = text[:i] + c + text[i + 1:]
            with pytest.raises(AddressError):
                from_bech32(mutated)
            changed += 1
    assert changed > 1000


def test_bech32_mixed_case_rejected_upper_accepted() -> None:
    addr = h160(b"bob")
    text = to_bech32(addr)
    upper = text.upper()
    assert from_bech32(upper) == addr
    # uppercase a single letter of the data part
    i = next(i for i in range(len(text) - 1, 0, -1) if text[i].isalpha())
    mixed = text[:i] + text[i].upper() + text[i + 1:]
    with pytest.raises(AddressError):
        from_bech32(mixed)
    with pytest.raises(AddressError):
        from_bech32("Smart" + text[5:])
    assert not is_address(mixed)


def test_bech32_wrong_hrp_rejected() -> None:
    addr = h160(b"carol")
    data = bech32_lib.convertbits(addr, 8, 5, True)
    for hrp in ("smarx", "cosmos", "bc", "smartt"):
        other = bech32_lib.bech32_encode(hrp, data)
        assert bech32_lib.bech32_decode(other)[0] == hrp  # a valid bech32 string ...
        with pytest.raises(AddressError):  # ... but not one of ours
            from_bech32(other)


@pytest.mark.parametrize("size", [0, 1, 19, 21, 32])
def test_bech32_wrong_payload_length_rejected(size: int) -> None:
    text = bech32_lib.bech32_encode(HRP, bech32_lib.convertbits(bytes(range(size)), 8, 5, True))
    with pytest.raises(AddressError):
        from_bech32(text)
    with pytest.raises(AddressError):
        to_bech32(bytes(size))


@pytest.mark.parametrize("bad", ["", "smart1", "smart1qqqqqq", "not an address", "smart1 x"])
def test_bech32_garbage_rejected(bad: str) -> None:
    with pytest.raises(AddressError):
        from_bech32(bad)
    assert not is_address(bad)


# --- Merkle trees ---------------------------------------------------------------------


def leaves_of(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_merkle_empty_root_constant() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert root_of_hashes([]) == EMPTY_ROOT
    assert EMPTY_ROOT == h256_tagged(b"smart/mk-empty")
    assert merkle_root([b""]) != EMPTY_ROOT


def test_merkle_small_shapes() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert merkle_root([b"a"]) == a
    assert merkle_root([b"a", b"b"]) == node_hash(a, b)
    assert merkle_root([b"a", b"b", b"c"]) == node_hash(node_hash(a, b), c)
    assert merkle_root([b"a", b"b"]) != merkle_root([b"b", b"a"])
    # no second-preimage trick: the two-leaf root is not the one-leaf root of its node
    assert merkle_root([b"a", b"b"]) != merkle_root([a + b])


@pytest.mark.parametrize("n", range(1, 41))
def test_merkle_every_proof_verifies_and_wrong_inputs_fail(n: int) -> None:
    leaves = leaves_of(n)
    root = root_of_hashes(leaves)
    wrong_leaf = leaf_hash(b"not in the tree")
    wrong_root = h256(b"wrong root")
    for i, leaf in enumerate(leaves):
        proof = prove(leaves, i)
        assert proof.index == i and proof.size == n
        assert MerkleProof.decode(proof.encode()) == proof
        assert verify_proof(root, leaf, proof)
        assert not verify_proof(root, wrong_leaf, proof)
        assert not verify_proof(wrong_root, leaf, proof)
        if n > 1:
            assert not verify_proof(root, leaves[(i + 1) % n], proof)
            for j in (i - 1, i + 1):
                if 0 <= j < n:
                    assert not verify_proof(root, leaf, replace(proof, index=j))
        assert not verify_proof(root, leaf, replace(proof, index=n))  # out of range
        assert not verify_proof(root, leaf, replace(proof, index=n + 5, size=n))
        if proof.path:
            assert not verify_proof(root, leaf, replace(proof, path=proof.path[:-1]))
            tampered = (flip_bit(proof.path[0], 0), *proof.path[1:])
            assert not verify_proof(root, leaf, replace(proof, path=tampered))


def test_merkle_prove_index_out_of_range() -> None:
    with pytest.raises(IndexError):
        prove(leaves_of(3), 3)
    with pytest.raises(IndexError):
        prove([], 0)


# --- keystore -------------------------------------------------------------------------


def test_keystore_encrypted_round_trip() -> None:
    key = PrivateKey.generate()
    doc = keystore.seal(key, "correct horse", ops=FAST_OPS, mem=FAST_MEM)
    assert keystore.is_encrypted(doc)
    text = json.dumps(doc)
    assert key.seed.hex() not in text
    assert doc["address"] == to_bech32(key.address)
    back = keystore.open_doc(json.loads(text), "correct horse")
    assert back.seed == key.seed and back.public_key == key.public_key


def test_keystore_wrong_or_missing_passphrase() -> None:
    key = PrivateKey.generate()
    doc = keystore.seal(key, "right", ops=FAST_OPS, mem=FAST_MEM)
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(doc, "wrong")
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(doc, None)
    with pytest.raises(keystore.KeystoreError):
        keystore.seal(key, "", ops=FAST_OPS, mem=FAST_MEM)
    with pytest.raises(keystore.KeystoreError):
        keystore.seal(key, None)


def test_keystore_tampered_ciphertext_detected() -> None:
    key = PrivateKey.generate()
    doc = keystore.seal(key, "pw", ops=FAST_OPS, mem=FAST_MEM)
    ct = bytes.fromhex(doc["crypto"]["ciphertext"])
    doc["crypto"]["ciphertext"] = flip_bit(ct, len(ct) * 8 - 1).hex()
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(doc, "pw")


def test_keystore_insecure_plaintext_round_trip(tmp_path) -> None:
    key = PrivateKey.generate()
    doc = keystore.seal(key, None, insecure=True)
    assert not keystore.is_encrypted(doc)
    assert doc["insecure_plaintext_seed"] == key.seed.hex()
    assert keystore.open_doc(doc, None).seed == key.seed
    path = tmp_path / "keys" / "demo.json"
    keystore.save(path, key, None, insecure=True)
    assert keystore.load(path, None).seed == key.seed


def test_keystore_save_mode_0600_and_no_overwrite(tmp_path) -> None:
    key = PrivateKey.generate()
    path = tmp_path / "k.json"
    keystore.save(path, key, None, insecure=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keystore.save(path, PrivateKey.generate(), None, insecure=True)
    assert path.read_bytes() == before
    assert keystore.load(path, None).seed == key.seed


def test_keystore_tampered_public_key_detected() -> None:
    key = PrivateKey.generate()
    other = PrivateKey.generate()
    plain = keystore.seal(key, None, insecure=True)
    plain["public_key"] = other.public_key.hex()
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(plain, None)
    enc = keystore.seal(key, "pw", ops=FAST_OPS, mem=FAST_MEM)
    enc["public_key"] = other.public_key.hex()
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(enc, "pw")


def test_keystore_malformed_documents(tmp_path) -> None:
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc({}, "pw")
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc({"insecure_plaintext_seed": "zz", "public_key": ""}, None)
    doc = keystore.seal(PrivateKey.generate(), "pw", ops=FAST_OPS, mem=FAST_MEM)
    doc["crypto"]["kdf"] = "scrypt"
    with pytest.raises(keystore.KeystoreError):
        keystore.open_doc(doc, "pw")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(keystore.KeystoreError):
        keystore.load(bad, None)
    with pytest.raises(keystore.KeystoreError):
        keystore.load(tmp_path / "missing.json", None)
