"""The known answers in ``tests/unit/vectors/vectors.json`` still hold, and the codec spec in
``docs/codec.md`` is enough to rebuild a transaction byte for byte without our codec."""

from __future__ import annotations

import json
import struct
from hashlib import blake2b

from vectors.vectors import CHAIN_ID, FILE, KEYS, compute

from smartchain.crypto.keys import verify

REGENERATE = ("a deliberate change? run: python tests/unit/vectors/vectors.py --write,"
              " review the diff")


def test_the_code_still_produces_every_pinned_vector() -> None:
    pinned = json.loads(FILE.read_text())
    now = compute()
    for part in ("keys", "transactions", "chain"):
        assert now[part] == pinned[part], f"{part} changed; {REGENERATE}"


def test_a_transfer_is_rebuilt_from_the_spec_alone() -> None:
    """docs/codec.md: fields in order, integers big-endian fixed width, bytes and strings
    with a u32 length; the signature covers a domain tag and every byte before it; the
    hash is BLAKE2b-256 of the whole encoding."""
    vector = json.loads(FILE.read_text())["transactions"]["bank/transfer"]
    key = KEYS[0]

    def text(s: bytes) -> bytes:
        return struct.pack(">I", len(s)) + s

    payload = bytes(range(20)) + (7).to_bytes(16, "big")  # to: bytes20, amount: u128
    assert payload.hex() == vector["payload"]
    unsigned = (text(CHAIN_ID.encode()) + key.public_key + struct.pack(">QQQ", 3, 100_000, 2)
                + text(b"bank/transfer") + text(payload))
    signed_part = b"smartchain/tx/v1\x00" + unsigned
    assert signed_part.hex() == vector["sign_bytes"]
    raw = bytes.fromhex(vector["tx"])
    assert raw[:-64] == unsigned and verify(key.public_key, signed_part, raw[-64:])
    assert blake2b(raw, digest_size=32).hexdigest() == vector["tx_hash"]
