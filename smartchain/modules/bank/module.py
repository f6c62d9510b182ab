"""The bank: HPC accounts (balance and nonce), transfers, fees, supply and emission.

It is also the chain's *auth* step (the ante handler): before any message runs, the
sender's nonce must be next and its balance must cover the maximum fee, which is taken up
front; unused gas is refunded afterwards and the fee goes to the block proposer. Fees
move HPC, they never create or destroy it, so supply changes only by emission.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.bank.types import (
    _ACCT,
    _U128_MASK,
    ACCOUNT_PREFIX,
    EMISSION_KEY,
    MINTED_KEY,
    SUPPLY_KEY,
    Account,
    Transfer,
)
from smartchain.state.emission import Emission, block_reward
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
    """The supply must equal the sum of every account's balance: HPC is neither made nor lost
    outside genesis and the block reward."""
    balances = sum(_decode_account(raw)[0] for _key, raw in view.iter_prefix(ACCOUNT_PREFIX))
    supply = total_supply(view)
    return [] if balances == supply else [f"supply {supply} != sum of balances {balances}"]


def add_balance(store: Overlay, address: bytes, amount: int) -> None:
    key = ACCOUNT_PREFIX + address
    balance, nonce = _decode_account(store.get(key))
    store.set(key, _encode_account(balance + amount, nonce))


def mint_hpc(store: Overlay, address: bytes, amount: int) -> None:
    """Create ``amount`` HPC for ``address`` at genesis (what ``Genesis.supply`` counts
    beyond the accounts: the staking module's locked genesis stake)."""
    add_balance(store, address, amount)
    store.set(SUPPLY_KEY, (_u128(store, SUPPLY_KEY) + amount).to_bytes(16, "big"))


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
        store.set(MINTED_KEY, (0).to_bytes(16, "big"))
        store.set(EMISSION_KEY, genesis.emission().encode())

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        """Mint this height's reward to the proposer, never past the emission pool."""
        raw = store.get(EMISSION_KEY)
        if raw is None:
            raise RuntimeError("state holds no emission schedule (genesis writes one)")
        em = Emission.decode(raw)
        minted = _u128(store, MINTED_KEY)
        reward = min(block_reward(em, block.height), em.pool - minted)
        if reward <= 0:
            return []
        add_balance(store, block.proposer, reward)
        store.set(MINTED_KEY, (minted + reward).to_bytes(16, "big"))
        store.set(SUPPLY_KEY, (_u128(store, SUPPLY_KEY) + reward).to_bytes(16, "big"))
        return [Event.of("block_reward", proposer=block.proposer.hex(), amount=reward)]

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
