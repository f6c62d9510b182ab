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
from smartchain.crypto.keys import ParallelVerifier, PrivateKey, verify, verify_many
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
