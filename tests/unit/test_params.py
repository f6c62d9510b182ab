"""Params are declared per module and assembled into one struct whose bytes never move."""

from __future__ import annotations

from dataclasses import fields

from smartchain.crypto.keys import PrivateKey
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import PARAM_GROUPS, Params
from smartchain.state.params.compute import ComputeParams
from smartchain.state.params.storage import StorageParams

# The encoding order before params moved into the modules: it must never change.
ORDER_BEFORE_MODULES = [
    "min_gas_price", "tx_base_gas", "gas_per_tx_byte", "gas_per_write", "max_tx_bytes",
    "max_tx_gas", "max_block_bytes", "max_block_gas", "block_time_ms", "token_issue_gas",
    "contract_call_gas", "contract_code_byte_gas", "compute_min_stake", "compute_slash_bps",
    "compute_max_extra_replicas", "compute_max_reassign", "compute_reveal_blocks",
    "compute_max_misses", "compute_max_tasks", "compute_scan_gas", "storage_epoch_blocks",
    "storage_min_price", "storage_min_collateral", "storage_slash_bps", "storage_audit_segments",
    "storage_audit_window", "storage_repair_bps", "storage_receipt_ttl", "storage_max_columns",
    "storage_max_segments", "compute_probation_weight", "compute_weight_per_hpc",
    "compute_miss_slash_bps", "storage_accept_ttl", "storage_collateral_per_gib",
    "compute_place_looks_per_block", "compute_place_wait_blocks",
]


def names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def test_params_fields_keep_the_order_they_had_before_modules_declared_them() -> None:
    assert names(Params)[:len(ORDER_BEFORE_MODULES)] == ORDER_BEFORE_MODULES


def test_params_lays_out_the_module_groups_in_the_declared_order() -> None:
    assert names(Params) == [n for group in PARAM_GROUPS for n in names(group)]


def test_a_modules_params_dataclass_has_its_fields_and_defaults_as_in_params() -> None:
    chain = Params()
    for module, prefix in ((ComputeParams(), "compute_"), (StorageParams(), "storage_")):
        own = names(type(module))
        assert own == [n for n in names(Params) if n.startswith(prefix)]
        assert all(getattr(module, n) == getattr(chain, n) for n in own)


def test_genesis_json_names_params_by_field_and_round_trips_them() -> None:
    key = PrivateKey.from_seed(bytes(32))
    gen = Genesis("p", 0, Params(compute_min_stake=7, storage_accept_ttl=9, max_tx_gas=1_100_000),
                  (GenesisAccount(key.address, 10),),
                  (GenesisValidator(key.public_key, 1, "v"),))
    doc = gen.to_json()
    assert doc["params"]["compute_min_stake"] == 7 and doc["params"]["storage_accept_ttl"] == 9
    back = Genesis.from_json(doc)
    assert back.params == gen.params and back.hash() == gen.hash()
    assert Params.decode(gen.params.encode()) == gen.params
