"""The bank: HPC accounts (balance and nonce), transfers, fees, supply and emission.

It is also the chain's *auth* step (the ante handler): before any message runs, the
sender's nonce must be next and its balance must cover the maximum fee, which is taken up
front; unused gas is refunded afterwards and the fee goes to the block proposer. Fees
move HPC, they never create or destroy it, so supply changes only by emission
(``mint_reward``: the rewards module's epoch mint, never past the schedule's pool) and by
burns (``burn_hpc``: governance deposits), which lower the supply and which the bank
counts (``bank/burned``): supply = genesis + minted - burned, checked after every block.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.bank.types import (
    _ACCT,
    _U128_MASK,
    ACCOUNT_PREFIX,
    BURNED_KEY,
    EMISSION_KEY,
    GENESIS_SUPPLY_KEY,
    MINTED_KEY,
    SUPPLY_KEY,
    Account,
    Transfer,
)
from smartchain.state.emission import Emission
from smartchain.state.module import BlockInfo, Module, Msg, Query, TxContext
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Event, Transaction


def _decode_account(raw: bytes | None) -> tuple[int, int]:
    """(balance, nonce) of an encoded Account; the hot path, so no object is built."""
    if raw is None:
        return 0, 0
    hi, lo, nonce = _ACCT.unpack(raw)
    return (hi << 64) | lo, nonce


def _encode_account(balance: int, nonce: int) -> bytes:
    return _ACCT.pack(balance >> 64, balance & _U128_MASK, nonce)


def account_key(address: bytes) -> bytes:
    return ACCOUNT_PREFIX + address


def get_account(store: Any, address: bytes) -> Account:
    balance, nonce = _decode_account(store.get(ACCOUNT_PREFIX + address))
    return Account(balance, nonce)


def _u128(store: Any, key: bytes) -> int:
    raw = store.get(key)
    return int.from_bytes(raw, "big") if raw else 0


def total_supply(store: Any) -> int:
    return _u128(store, SUPPLY_KEY)


def supply_violations(view: Any) -> list[str]:
    """The supply must equal the sum of every account's balance, and genesis + minted -
    burned: HPC is neither made nor lost outside genesis, the epoch mint and burns."""
    balances = sum(_decode_account(raw)[0] for _key, raw in view.iter_prefix(ACCOUNT_PREFIX))
    supply = total_supply(view)
    wrong = [] if balances == supply else [f"supply {supply} != sum of balances {balances}"]
    genesis, minted, burned = genesis_supply(view), total_minted(view), total_burned(view)
    if supply != genesis + minted - burned:
        wrong.append(f"supply {supply} != genesis {genesis} + minted {minted} - burned "
                     f"{burned}")
    return wrong


def genesis_supply(store: Any) -> int:
    """Every HPC genesis created, whichever modules created it (the bank's accounts, the
    staking module's locked stake): counted by the bank, so a chain without the staking
    module has its own figure."""
    return _u128(store, GENESIS_SUPPLY_KEY)


def total_minted(store: Any) -> int:
    return _u128(store, MINTED_KEY)


def emission_of(store: Any) -> Emission:
    """The schedule genesis fixed (``smartchain.state.emission``)."""
    raw = store.get(EMISSION_KEY)
    if raw is None:
        raise RuntimeError("state holds no emission schedule (genesis writes one)")
    return Emission.decode(raw)


def mint_reward(store: Overlay, to: bytes, amount: int) -> int:
    """Create up to ``amount`` new HPC for ``to`` (the rewards module's account), never past
    what the schedule's pool has left; returns what was minted."""
    minted = total_minted(store)
    amount = max(0, min(amount, emission_of(store).pool - minted))
    if amount:
        add_balance(store, to, amount)
        store.set(MINTED_KEY, (minted + amount).to_bytes(16, "big"))
        store.set(SUPPLY_KEY, (total_supply(store) + amount).to_bytes(16, "big"))
    return amount


def total_burned(store: Any) -> int:
    return _u128(store, BURNED_KEY)


def burn_hpc(store: Overlay, frm: bytes, amount: int) -> None:
    """Destroy ``amount`` of ``frm``'s HPC: the supply shrinks and the burned total grows by
    it, or ``TxError`` if ``frm`` cannot cover it."""
    key = ACCOUNT_PREFIX + frm
    balance, nonce = _decode_account(store.get(key))
    if balance < amount:
        raise TxError(Code.INSUFFICIENT_FUNDS,
                      f"insufficient funds to burn: balance {balance} < amount {amount}")
    store.set(key, _encode_account(balance - amount, nonce))
    store.set(SUPPLY_KEY, (total_supply(store) - amount).to_bytes(16, "big"))
    store.set(BURNED_KEY, (total_burned(store) + amount).to_bytes(16, "big"))


def add_balance(store: Overlay, address: bytes, amount: int) -> None:
    key = ACCOUNT_PREFIX + address
    balance, nonce = _decode_account(store.get(key))
    store.set(key, _encode_account(balance + amount, nonce))


def mint_hpc(store: Overlay, address: bytes, amount: int) -> None:
    """Create ``amount`` HPC for ``address`` at genesis (what ``Genesis.supply`` counts
    beyond the accounts: the staking module's locked genesis stake)."""
    add_balance(store, address, amount)
    store.set(SUPPLY_KEY, (_u128(store, SUPPLY_KEY) + amount).to_bytes(16, "big"))
    store.set(GENESIS_SUPPLY_KEY, (genesis_supply(store) + amount).to_bytes(16, "big"))


def move_hpc(store: Overlay, frm: bytes, to: bytes, amount: int) -> None:
    """Move HPC between accounts, or raise ``TxError`` if ``frm`` cannot cover it."""
    fkey = ACCOUNT_PREFIX + frm
    balance, nonce = _decode_account(store.get(fkey))
    if balance < amount:
        raise TxError(Code.INSUFFICIENT_FUNDS,
                      f"insufficient funds: balance {balance} < amount {amount}")
    store.set(fkey, _encode_account(balance - amount, nonce))
    add_balance(store, to, amount)



def _validate_transfer(msg: Transfer) -> None:
    if msg.amount <= 0:
        raise TxError(Code.INVALID_PAYLOAD, "transfer amount must be a positive integer")


def _handle_transfer(ctx: TxContext, msg: Transfer) -> None:
    ctx.gas.consume(2 * ctx.block.params.gas_per_write)
    move_hpc(ctx.store, ctx.sender, msg.to, msg.amount)
    # No event: like Ethereum's value transfers, the transaction itself (sender, recipient,
    # amount) is the record, and a receipt-per-transfer event would double the receipt
    # work on the hottest path. Events carry what a transaction does not say.


class Bank(Module):
    name = "bank"

    def messages(self) -> dict[str, Msg]:
        return {
            "bank/transfer": Msg(Transfer, _handle_transfer, _validate_transfer,
                                 spend=lambda m: m.amount),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "account": lambda view, args: get_account(view, from_bech32(args["address"])),
            "supply": lambda view, args: total_supply(view),
        }

    def init_genesis(self, store: Overlay, genesis: Any) -> None:
        supply = 0
        for alloc in genesis.accounts:
            add_balance(store, alloc.address, alloc.balance)
            supply += alloc.balance
        store.set(SUPPLY_KEY, supply.to_bytes(16, "big"))
        store.set(GENESIS_SUPPLY_KEY, supply.to_bytes(16, "big"))
        store.set(MINTED_KEY, (0).to_bytes(16, "big"))
        store.set(EMISSION_KEY, genesis.emission().encode())

    # --- auth: the ante handler and fee settlement -------------------------------------

    def ante(self, store: Overlay, tx: Transaction, sender: bytes) -> None:
        """Check nonce and fee cover, take the maximum fee and bump the nonce."""
        key = ACCOUNT_PREFIX + sender
        balance, nonce = _decode_account(store.get(key))
        if tx.nonce != nonce:
            code = Code.NONCE_REUSED if tx.nonce < nonce else Code.NONCE_SKIPPED
            raise TxError(code, f"nonce {tx.nonce} but account expects {nonce}")
        max_fee = tx.gas_limit * tx.gas_price
        if balance < max_fee:
            raise TxError(Code.INSUFFICIENT_FUNDS,
                          f"insufficient funds for fee: balance {balance} < {max_fee}")
        store.set(key, _encode_account(balance - max_fee, nonce + 1))

    def settle_fee(self, store: Overlay, tx: Transaction, sender: bytes, gas_used: int,
                   block: BlockInfo) -> int:
        """Refund unused gas to the sender; the used part goes to the proposer at end_block."""
        fee = gas_used * tx.gas_price
        refund = tx.gas_limit * tx.gas_price - fee
        if refund:
            add_balance(store, sender, refund)
        block.fees += fee
        return fee

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        if block.fees:
            add_balance(store, block.proposer, block.fees)
        return []

    def invariants(self, view: Any) -> list[str]:
        return supply_violations(view)
