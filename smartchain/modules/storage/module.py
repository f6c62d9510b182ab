"""Storage deals on chain: providers, deals over erasure-coded columns, audits by challenge,
payment from escrow, slashing, repair and bandwidth receipts (Smart Chain 3.2.2; Filecoin,
Storj, Sia).

Why it is shaped this way:

- **The chain never sees a byte of the file.** A client encrypts and erasure-codes off
  chain (``smartchain/storage``, pyeclib); the chain keeps, per *column* (one fragment
  index across every segment, held by one provider), a Merkle root over the pieces' roots.
  That is enough to audit: a challenged provider answers with one 1 KiB chunk and two
  Merkle paths (chunk -> piece root -> column root), a few hundred bytes whatever the file
  size. The tree shapes are ``crypto.merkle``'s, so the client, the provider and the chain
  build the same roots from the same pieces without sharing code beyond ``crypto``.
- **A provider signs what it holds, once, for whoever uploaded it.** A deal names each
  column's provider, root and a signature of ``acceptance_bytes`` (chain id, file id,
  fragment index, root, bytes, segments, placement round, the height it was signed at, the
  uploader's address) by the provider's registered key: nobody can be made responsible
  for data it never received, and a provider cannot deny having accepted it. The round (0
  in the deal, one more per repair of the column) and the height (usable for
  ``storage_accept_ttl`` blocks) make every acceptance good once, soon; the uploader must
  be the transaction's sender, so an acceptance published in a deal or repair cannot be
  replayed by anyone to earn a repair reward. The registered key comes in the registration
  payload (the handler sees only the sender's address) and must hash to the sender's
  address.
- **Collateral follows the bytes.** A provider must lock ``storage_collateral_per_gib`` for
  every GiB it holds (at least ``storage_min_collateral``), checked whenever it takes a
  column (deal or repair). A missed audit costs ``storage_slash_bps`` of the collateral
  that column's bytes call for: slashing is proportional to the data lost.
- **Money stays in the bank.** Collaterals, escrows and repair budgets are HPC in one
  module account (``MODULE_ACCOUNT``), so the bank's supply check holds untouched: its
  balance is the sum of live collaterals, escrows and repair budgets. Slashed collateral is
  not burned: it moves into the failing deal's repair budget, pays whoever repairs the
  column, and what is left returns to the owner when the deal ends.
- **Escrow covers every payment it promises.** A deal locks ``epochs x`` each column's
  epoch fee, ``ceil(price x column_bytes / GiB)`` (rounded up per epoch, so the sum of the
  payments never exceeds the escrow), plus ``storage_repair_bps`` of that as repair budget.
  A repaired column keeps the price the owner agreed to (or the new provider's, if lower):
  the escrow cannot be topped up, so the deal's price is fixed at creation.
- **Epochs, from the chain's own randomness.** At the first block of an epoch,
  ``begin_block`` (1) settles the previous epoch: a column with a challenge left open is
  marked unhealthy and its provider loses ``storage_slash_bps`` of its collateral and
  reputation; (2) ends the deals whose last epoch is over and refunds what is left; (3)
  opens challenges for every healthy column: distinct segments and a leaf in each, drawn
  from ``BlockInfo.beacon`` (the block's ``last_commit_hash``), answerable until
  ``storage_audit_window`` blocks after the epoch start. When every challenge of a column
  is answered the provider is paid the column's epoch fee at once. Unhealthy columns are
  neither challenged nor paid; once a deal has fewer healthy columns than its
  ``repair_threshold`` anyone may rebuild one onto a new provider and earn
  ``ceil(repair_budget / n)``: a share of what is left, refilled by every slash. The reward
  is held in the column and paid when it first passes all its challenges of an epoch; if
  it misses them instead, the reward goes back to the budget. Each epoch challenges
  ``storage_audit_segments`` distinct leaves per column (on distinct segments first): see
  docs/storage.md for the detection odds and the proof bytes this costs.
- **Bandwidth is paid by receipts.** A client signs a receipt for each batch of bytes a
  provider served; the provider claims batches of them within ``storage_receipt_ttl``
  blocks. Claimed receipts are remembered under keys ordered by the receipt's height, so
  ``end_block`` forgets them exactly when they could no longer be claimed anyway.
- **Determinism.** Integers only; deals, columns and challenges are visited in state-key
  order; randomness only from the beacon.

Epoch work in ``begin_block`` (settling, ending, opening challenges) is not metered: the
deals that cause it paid for their columns, and it is proportional to the columns stored.
Signature checks and proof hashing in transactions are metered (``SIGNATURE_GAS``,
``HASH_GAS``).

The logic lives in parts, each importing only the ones before it: ``keys`` (keys, collateral
rules, reads), ``state`` (the env, payments, slashing), ``epochs`` (challenges, settling an
epoch, repairs), ``checks`` (stateless) and ``handlers``. This file keeps the queries and the
``Module`` that wires them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.storage.checks import (
    _validate_claim,
    _validate_column,
    _validate_deal,
    _validate_prove,
    _validate_register,
)
from smartchain.modules.storage.epochs import (
    _prune_claims,
    _run_epoch,
)
from smartchain.modules.storage.handlers import (
    _handle_cancel,
    _handle_claim,
    _handle_create,
    _handle_deregister,
    _handle_prove,
    _handle_register,
    _handle_repair,
)
from smartchain.modules.storage.invariants import invariants
from smartchain.modules.storage.keys import (
    _split_challenge,
    column_collateral,
    get_deal,
    get_provider,
    healthy_count,
    needs_repair,
    required_collateral,
)
from smartchain.modules.storage.state import (
    _Env,
)
from smartchain.modules.storage.types import (
    _U32,
    ACTIVE,
    BPS,
    CANCELLED,
    CHALLENGE_PREFIX,
    CLAIMED_PREFIX,
    DEAL_STATUS,
    HOLD_PREFIX,
    INITIAL_REPUTATION,
    LIVE_PREFIX,
    MAX_CODE_N,
    OWNER_PREFIX,
    PROVIDER_PREFIX,
    CancelDeal,
    Challenge,
    ClaimBandwidth,
    Column,
    ColumnRef,
    CreateDeal,
    Deal,
    DealView,
    DeregisterProvider,
    NewColumn,
    OpenChallenge,
    Prove,
    ProviderView,
    Receipt,
    RegisterProvider,
    Repair,
    StorageProvider,
    acceptance_bytes,
    audit_picks,
    bandwidth_amount,
    deal_column_bytes,
    deal_cost,
    epoch_fee,
    file_id_of,
    piece_length,
    receipt_bytes,
)
from smartchain.state.module import BlockInfo, Module, Msg, Query
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay
from smartchain.types.tx import Event

# What other layers import from here (the parts hold the logic).
__all__ = [
    "ACTIVE",
    "BPS",
    "CANCELLED",
    "CLAIMED_PREFIX",
    "INITIAL_REPUTATION",
    "ClaimBandwidth",
    "Column",
    "ColumnRef",
    "CreateDeal",
    "Deal",
    "DealView",
    "NewColumn",
    "Receipt",
    "RegisterProvider",
    "Storage",
    "StorageProvider",
    "acceptance_bytes",
    "audit_picks",
    "bandwidth_amount",
    "column_collateral",
    "columns_of",
    "deal_column_bytes",
    "deal_cost",
    "deal_view",
    "deals_of",
    "epoch_fee",
    "file_id_of",
    "get_deal",
    "get_provider",
    "healthy_count",
    "list_providers",
    "needs_repair",
    "open_challenges",
    "piece_length",
    "provider_view",
    "receipt_bytes",
    "repairs",
    "required_collateral",
]


# --- queries -----------------------------------------------------------------------------------


def read_params(view: Any) -> Params:
    raw = view.get(PARAMS_KEY)
    return Params.decode(raw) if raw is not None else Params()


def list_providers(view: Any) -> list[ProviderView]:
    """Every provider (active or not), in address order."""
    start = len(PROVIDER_PREFIX)
    return [ProviderView(k[start:], StorageProvider.decode(v))
            for k, v in view.iter_prefix(PROVIDER_PREFIX)]


def provider_view(view: Any, address: bytes) -> ProviderView | None:
    p = get_provider(view, address)
    return ProviderView(address, p) if p is not None else None


def deal_view(view: Any, file_id: bytes) -> DealView | None:
    deal = get_deal(view, file_id)
    if deal is None:
        return None
    return DealView(file_id, DEAL_STATUS[deal.status], deal_column_bytes(deal),
                    healthy_count(deal), deal)


def _deal_views(view: Any, file_ids: Iterator[bytes]) -> list[DealView]:
    out = []
    for file_id in file_ids:
        d = deal_view(view, file_id)
        assert d is not None, "an index names no deal"
        out.append(d)
    return out


def deals_of(view: Any, owner: bytes) -> list[DealView]:
    """Every deal an owner made, in file id order."""
    prefix = OWNER_PREFIX + owner
    return _deal_views(view, (k[len(prefix):] for k, _ in view.iter_prefix(prefix)))


def open_challenges(view: Any, provider: bytes) -> list[OpenChallenge]:
    """What a provider must prove this epoch, in (file id, fragment, segment) order."""
    out = []
    for key, raw in view.iter_prefix(CHALLENGE_PREFIX + provider):
        _p, file_id, frag, segment = _split_challenge(key)
        c = Challenge.decode(raw)
        out.append(OpenChallenge(file_id, frag, segment, c.leaf, c.deadline))
    return out


def columns_of(view: Any, provider: bytes) -> list[ColumnRef]:
    """Columns of active deals a provider holds: whatever else it stores it may delete."""
    prefix = HOLD_PREFIX + provider
    return [ColumnRef(k[len(prefix):len(prefix) + 32], _U32.unpack_from(k, len(prefix) + 32)[0])
            for k, _ in view.iter_prefix(prefix)]


def repairs(view: Any) -> list[DealView]:
    """Active deals with unhealthy columns and fewer healthy ones than their threshold."""
    out = []
    for key, _ in view.iter_prefix(LIVE_PREFIX):
        d = deal_view(view, key[len(LIVE_PREFIX):])
        assert d is not None, "a live key names no deal"
        if needs_repair(d.deal):
            out.append(d)
    return out


def _address(args: dict[str, str]) -> bytes:
    return from_bech32(args["address"])


def _file_id(args: dict[str, str]) -> bytes:
    file_id = bytes.fromhex(args["file_id"])
    if len(file_id) != 32:
        raise ValueError("a file id is 32 bytes (64 hex digits)")
    return file_id


class Storage(Module):
    name = "storage"

    def messages(self) -> dict[str, Msg]:
        return {
            "storage/register_provider": Msg(RegisterProvider, _handle_register,
                                             _validate_register, spend=lambda m: m.collateral),
            "storage/deregister_provider": Msg(DeregisterProvider, _handle_deregister),
            "storage/create_deal": Msg(CreateDeal, _handle_create, _validate_deal,
                                       spend=lambda m: m.max_cost),
            "storage/prove": Msg(Prove, _handle_prove, _validate_prove),
            "storage/repair": Msg(Repair, _handle_repair,
                                  lambda m: _validate_column(m.new, MAX_CODE_N)),
            "storage/cancel_deal": Msg(CancelDeal, _handle_cancel),
            "storage/claim_bandwidth": Msg(ClaimBandwidth, _handle_claim, _validate_claim),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "providers": lambda view, args: list_providers(view),
            "provider": lambda view, args: provider_view(view, _address(args)),
            "deal": lambda view, args: deal_view(view, _file_id(args)),
            "deals_of": lambda view, args: deals_of(view, _address(args)),
            "challenges_of": lambda view, args: open_challenges(view, _address(args)),
            "columns_of": lambda view, args: columns_of(view, _address(args)),
            "repairs": lambda view, args: repairs(view),
        }

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        if block.height % max(1, block.params.storage_epoch_blocks):
            return []
        env = _Env(store, block, None, [])
        _run_epoch(env)
        return env.events

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        env = _Env(store, block, None, [])
        _prune_claims(env)
        return env.events

    def invariants(self, view: Any) -> list[str]:
        return invariants(view)
