"""Known answers: what the codec, the keys and the state machine produce, pinned.

Another implementation (a wallet, a device SDK) checks itself against ``vectors.json``;
this code base checks that it still produces them (``tests/unit/test_vectors.py``), so a change
of bytes, hashes or state roots is always deliberate. After such a change, regenerate and
review the diff:

    python tests/unit/vectors/vectors.py --write

Everything here is fixed: keys from fixed seeds, a fixed genesis, fixed block times and a
fixed script of blocks. Ed25519 signatures are deterministic, so signed bytes are fixed too.
The encoding is specified in ``docs/codec.md``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import typing
from pathlib import Path
from typing import Any

from smartchain.app import default_modules, open_chain
from smartchain.codec import Struct, _kind_of
from smartchain.crypto.address import address_of, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.compute.types import RegisterProvider as ComputeProvider
from smartchain.modules.contracts.types import Arg, Call, Deploy, contract_address
from smartchain.modules.storage.types import RegisterProvider as StorageProvider
from smartchain.modules.tokens.types import Issue, TokenTransfer
from smartchain.state.executor import Executor
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.tx import Transaction

HERE = Path(__file__).resolve().parent
FILE = HERE / "vectors.json"
CHAIN_ID = "smart-vectors-1"
GENESIS_TIME_MS = 1_700_000_000_000
HPC = 10**8
KEYS = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 5)]  # seeds 0x01.., 0x04..
VALIDATOR = PrivateKey.from_seed(bytes([0xFA]) * 32)
COUNTER = b"""
function init() storage.set("n", 0) end
function add(k) local n = storage.get("n") + k storage.set("n", n) emit("added", k, n) return n end
"""


# --- a sample of every payload ----------------------------------------------------------


def _sample(annotation: Any, module: Any) -> Any:
    """A fixed, non-trivial value of a codec type (lists hold one item)."""
    if isinstance(annotation, type) and issubclass(annotation, Struct):
        return sample_struct(annotation, module)
    return _sample_named(_kind_of(annotation).name, module)


def _sample_named(name: str, module: Any) -> Any:
    if name.startswith("list["):
        return (_sample_named(name[5:-1], module),)
    if name.startswith("optional"):
        return None
    if name == "i64":
        return -7
    if name == "bool":
        return True
    if name == "bytes":
        return b"\x01\x02\x03"
    if name.startswith("bytes"):
        return bytes(range(int(name[5:])))
    if name == "str":
        return "vector"
    if name[0] == "u" and name[1:].isdigit():
        return 7
    return sample_struct(getattr(module, name), module)


def sample_struct(cls: type[Struct], module: Any) -> Struct:
    hints = typing.get_type_hints(cls, include_extras=True)
    return cls(*(_sample(hints[f.name], module) for f in dataclasses.fields(cls)))


def payload_vectors() -> dict[str, dict[str, str]]:
    """Per transaction kind: a sample payload's bytes, and a transaction carrying it signed
    by key 1 (bytes, the bytes its signature covers, its hash)."""
    out: dict[str, dict[str, str]] = {}
    for kind, msg in sorted(Executor(default_modules()).msgs.items()):
        payload = sample_struct(msg.payload, sys.modules[msg.payload.__module__]).encode()
        tx = Transaction.create(KEYS[0], chain_id=CHAIN_ID, nonce=3, kind=kind,
                                payload=payload, gas_limit=100_000, gas_price=2)
        out[kind] = {"payload": payload.hex(), "tx": tx.encode().hex(),
                     "sign_bytes": tx.sign_bytes().hex(), "tx_hash": tx.hash().hex()}
    return out


def key_vectors() -> list[dict[str, str]]:
    return [{"seed": k.seed.hex(), "public_key": k.public_key.hex(),
             "address": address_of(k.public_key).hex(), "bech32": to_bech32(k.address),
             "signature_of_abc": k.sign(b"abc").hex()} for k in [*KEYS, VALIDATOR]]


# --- a fixed genesis and a fixed script of blocks ---------------------------------------


def genesis() -> Genesis:
    gen = Genesis(CHAIN_ID, GENESIS_TIME_MS, Params(),
                  tuple(GenesisAccount(k.address, 1_000 * HPC) for k in KEYS),
                  (GenesisValidator(VALIDATOR.public_key, 1, "v0"),))
    gen.validate()
    return gen


def script() -> list[list[tuple[PrivateKey, Any, int]]]:
    """Blocks of (sender, payload, gas limit): each module's first steps."""
    a, b, c, d = KEYS
    counter = contract_address(c.address, 1)
    return [
        [(a, Transfer(b.address, 5 * HPC), 20_000), (b, Transfer(a.address, 1), 20_000)],
        [(a, Issue("PARK", "Parking credit", 2, 1_000_000, True, 2_000_000), 1_100_000)],
        [(a, TokenTransfer("PARK", b.address, 250), 30_000),
         (c, Deploy(COUNTER, ()), 20_000_000)],
        [(c, Call(counter, "add", (Arg.of(5),)), 1_000_000),
         (d, ComputeProvider(1_000_000, 20 * HPC, d.address, ""), 200_000),
         (b, StorageProvider(1 << 30, 1_000, 10, 20 * HPC, "127.0.0.1:1", b.public_key), 200_000)],
    ]


def run_script(root: Path) -> dict[str, Any]:
    gen = genesis()
    chain = open_chain(root, gen)
    nonces: dict[bytes, int] = {}
    blocks = []
    try:
        for height, entries in enumerate(script(), start=1):
            raws = []
            for key, payload, gas in entries:
                kind = next(k for k, m in chain.executor.msgs.items()
                            if m.payload is type(payload))
                nonce = nonces.get(key.address, 0)
                nonces[key.address] = nonce + 1
                raws.append(Transaction.create(key, chain_id=CHAIN_ID, nonce=nonce, kind=kind,
                                               payload=payload.encode(), gas_limit=gas,
                                               gas_price=1).encode())
            checked = [chain.executor.check_stateless(r, Transaction.decode(r), h256(r),
                                                      CHAIN_ID, chain.params) for r in raws]
            for c in checked:
                chain.executor.check_costly(c)
            block, receipts, skipped = chain.build_block(
                checked, GENESIS_TIME_MS + 1_000 * height, VALIDATOR)
            assert not skipped and len(receipts) == len(raws)
            blocks.append({"height": height, "block_hash": block.hash().hex(),
                           "state_root": chain.state_root.hex(),
                           "receipts": [{"code": r.code, "gas_used": r.gas_used}
                                        for r in receipts]})
    finally:
        chain.close()
    return {"genesis_hash": gen.hash().hex(), "blocks": blocks}


def compute() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        chain = run_script(Path(tmp) / "chain")
    return {"chain_id": CHAIN_ID, "keys": key_vectors(), "transactions": payload_vectors(),
            "chain": chain}


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/unit/vectors/vectors.py --write")
    FILE.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {FILE}")
