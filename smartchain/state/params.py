"""Chain parameters: set in genesis, kept in state (governance will change them later)."""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, Struct

PARAMS_KEY = b"params"


@dataclass(frozen=True, slots=True)
class Params(Struct):
    min_gas_price: U64 = 1  # base units of HPC per unit of gas
    tx_base_gas: U64 = 10_000  # every transaction, for signature check and bookkeeping
    gas_per_tx_byte: U64 = 10
    gas_per_write: U64 = 1_000  # each state key written
    max_tx_bytes: U32 = 64 * 1024
    max_tx_gas: U64 = 50_000_000
    max_block_bytes: U64 = 32 * 1024 * 1024
    # Gas a block's transactions may reserve (each its whole limit, from what the ones
    # before it left): bounds what executing one block costs every node. About 21,000
    # transfers (11.5k gas each), or 1.4 s of a plain Lua loop on a 2-core test machine.
    max_block_gas: U64 = 250_000_000
    block_time_ms: U64 = 1_000  # target; also sets the halving interval at genesis
    token_issue_gas: U64 = 1_000_000  # a symbol is claimed for ever: priced against squatting
    contract_call_gas: U64 = 5_000  # each contract call, top-level or nested
    # deploying, per byte of source: kept on chain twice (as written, and rewritten for the VM
    # once: about 0.6 us of CPU a byte, as much as 100 gas of a plain Lua loop)
    contract_code_byte_gas: U64 = 100
    # compute jobs (smartchain/state/modules/compute.py)
    compute_min_stake: U64 = 10 * 10**8  # base units a provider locks to be assigned tasks
    compute_slash_bps: U32 = 1_000  # part of its stake a provider loses per out-voted result
    compute_max_extra_replicas: U32 = 3  # adaptive replication: replicas added on disagreement
    compute_max_reassign: U32 = 8  # replicas a task may lose (deadline, abstention) and replace
    compute_reveal_blocks: U64 = 10  # blocks to reveal once every replica of a task committed
    compute_max_misses: U32 = 3  # missed deadlines in a row that take a provider off the roster
    compute_max_tasks: U32 = 4_096  # tasks in one job
    compute_scan_gas: U64 = 20  # each provider looked at when placing one replica
    # storage deals (smartchain/state/modules/storage.py)
    storage_epoch_blocks: U64 = 100  # blocks per audit epoch: challenges open at its first block
    storage_min_price: U64 = 1_000  # base units per GiB per epoch a provider may ask, at least
    storage_min_collateral: U64 = 10 * 10**8  # base units a provider locks to take columns
    storage_slash_bps: U32 = 10_000  # part of a column's collateral lost per missed column-epoch
    storage_audit_segments: U32 = 22  # leaves challenged per column per epoch (distinct
    # segments first): a provider missing 10 % of a column passes 3 epochs with p < 0.001
    storage_audit_window: U64 = 50  # blocks after the epoch start to answer (kept < the epoch)
    storage_repair_bps: U32 = 2_000  # repair budget locked with a deal, part of its storage cost
    storage_receipt_ttl: U64 = 1_000  # blocks a bandwidth receipt can be claimed in
    storage_max_columns: U32 = 32  # code_n of a deal, at most
    storage_max_segments: U32 = 65_536  # segments of a deal, at most
    # compute: Sybil resistance and clean deadlines (smartchain/state/modules/compute.py)
    compute_probation_weight: U64 = 1_000_000  # a new provider's scheduling weight
    compute_weight_per_hpc: U64 = 100_000  # weight each whole HPC of stake backs, at most
    compute_miss_slash_bps: U32 = 100  # part of its stake a provider loses per missed deadline
    # storage acceptances and collateral (smartchain/state/modules/storage.py, docs/storage.md)
    storage_accept_ttl: U64 = 600  # blocks a provider's acceptance (and upload intent) is good for
    storage_collateral_per_gib: U64 = 10**8  # collateral per GiB held, above the minimum
    # compute: bounded, fair placement in end_block (smartchain/state/modules/compute.py)
    compute_place_looks_per_block: U64 = 50_000  # provider looks end_block may spend placing
    compute_place_wait_blocks: U64 = 10_000  # blocks a task short of replicas may wait, at most
