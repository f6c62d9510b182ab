"""Genesis: the chain's identity, parameters, first balances and first signers.

Kept on disk as JSON (bech32 addresses, hex keys, integer base units) and hashed through
the canonical codec, so two nodes with the same genesis file share the same genesis hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smartchain.codec import U64, U128, Fixed20, Fixed32, Str, Struct, list_of
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256_tagged
from smartchain.state.emission import MAX_SUPPLY, Emission, schedule
from smartchain.state.params import Params
from smartchain.types.amount import UNITS_PER_HPC


class GenesisError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class GenesisAccount(Struct):
    address: Fixed20
    balance: U128


@dataclass(frozen=True, slots=True)
class GenesisValidator(Struct):
    public_key: Fixed32
    power: U64
    name: Str


@dataclass(frozen=True, slots=True)
class Genesis(Struct):
    chain_id: Str
    time_ms: U64
    params: Params
    accounts: list_of[GenesisAccount]
    validators: list_of[GenesisValidator]

    def hash(self) -> bytes:
        return h256_tagged(b"smart/genesis", self.encode())

    def supply(self) -> int:
        """Every HPC genesis creates: the accounts, and the genesis validators' self-stake
        (``power`` whole HPC each), which the staking module holds locked."""
        return sum(a.balance for a in self.accounts) + self.validator_stake()

    def validator_stake(self) -> int:
        return sum(v.power for v in self.validators) * UNITS_PER_HPC

    def emission(self) -> Emission:
        return schedule(self.params.block_time_ms, self.supply())

    def validate(self) -> None:
        if not self.chain_id or len(self.chain_id) > 64:
            raise GenesisError("chain_id must be 1..64 characters")
        if self.supply() > MAX_SUPPLY:
            raise GenesisError("genesis allocations exceed the 210,000,000 HPC cap")
        if len({a.address for a in self.accounts}) != len(self.accounts):
            raise GenesisError("duplicate genesis account")
        if not self.validators:
            raise GenesisError("genesis needs at least one validator")

    # --- JSON form ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "time_ms": self.time_ms,
            "params": asdict(self.params),
            "accounts": [{"address": to_bech32(a.address), "balance": str(a.balance)}
                         for a in self.accounts],
            "validators": [{"public_key": v.public_key.hex(), "power": v.power, "name": v.name}
                           for v in self.validators],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Genesis:
        try:
            gen = cls(
                chain_id=doc["chain_id"],
                time_ms=int(doc["time_ms"]),
                params=Params(**doc.get("params", {})),
                accounts=tuple(GenesisAccount(from_bech32(a["address"]), int(a["balance"]))
                               for a in doc["accounts"]),
                validators=tuple(GenesisValidator(bytes.fromhex(v["public_key"]), int(v["power"]),
                                                  v.get("name", ""))
                                 for v in doc["validators"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GenesisError(f"invalid genesis: {exc}") from exc
        gen.validate()
        return gen

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Genesis:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise GenesisError(f"cannot read genesis {path}: {exc}") from exc
