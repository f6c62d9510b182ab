"""The shared state logic: the module's env over providers and deals, payments and slashing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from smartchain.crypto.keys import verify
from smartchain.modules.env import ModuleEnv
from smartchain.modules.storage.keys import (
    _hold_key,
    deal_key,
    get_provider,
    provider_key,
    required_collateral,
)
from smartchain.modules.storage.types import (
    DEAL_STATUS,
    LIVE_PREFIX,
    MAX_REPUTATION,
    MODULE_ACCOUNT,
    REPUTATION_GAIN,
    SIGNATURE_GAS,
    Column,
    Deal,
    NewColumn,
    StorageProvider,
    acceptance_bytes,
    deal_column_bytes,
    epoch_fee,
    epoch_of,
)
from smartchain.types.errors import Code, TxError

# --- the shared state logic ----------------------------------------------------------------------


class _Env(ModuleEnv[StorageProvider]):
    """``ModuleEnv`` over storage providers, and the deal records."""

    __slots__ = ()

    def provider_key(self, address: bytes) -> bytes:
        return provider_key(address)

    def load_provider(self, address: bytes) -> StorageProvider | None:
        return get_provider(self.store, address)

    def need_provider(self, address: bytes) -> StorageProvider:
        p = self.provider(address)
        assert p is not None, "a column names a provider that is not registered"
        return p

    def put_deal(self, file_id: bytes, deal: Deal) -> None:
        self.set(deal_key(file_id), deal.encode())

    @property
    def epoch(self) -> int:
        return epoch_of(self.block.height, self.params.storage_epoch_blocks)


def _fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


def _keys(store: Any, prefix: bytes) -> list[bytes]:
    """Keys under ``prefix`` in order, read before the caller writes under it."""
    return [k for k, _ in store.iter_prefix(prefix)]


def _take(env: _Env, address: bytes, nbytes: int) -> None:
    p = env.need_provider(address)
    env.put_provider(address, replace(p, used=p.used + nbytes))


def _release(env: _Env, address: bytes, nbytes: int) -> None:
    p = env.need_provider(address)
    env.put_provider(address, replace(p, used=max(0, p.used - nbytes)))


def _accepting_provider(env: _Env, file_id: bytes, col: NewColumn, nbytes: int,
                        segments: int, round: int, uploader: bytes) -> StorageProvider:
    """The column's provider, if it is active, has room, has collateral for the bytes it
    would hold, and signed, recently, this placement round of the column as uploaded by
    ``uploader`` (the sender): an acceptance is good once, for whoever did the upload."""
    p = env.provider(col.provider)
    who = col.provider.hex()
    if p is None or not p.active:
        raise _fail(f"provider {who} is not an active storage provider")
    if p.used + nbytes > p.capacity:
        raise _fail(f"provider {who} has {p.capacity - p.used} bytes free, the column needs "
                    f"{nbytes}")
    need = required_collateral(env.params, p.used + nbytes)
    if p.collateral < need:
        raise _fail(f"provider {who} has collateral {p.collateral}, holding {p.used + nbytes} "
                    f"bytes needs {need}")
    height, ttl = env.block.height, env.params.storage_accept_ttl
    if not col.height <= height <= col.height + ttl:
        raise _fail(f"provider {who}'s acceptance of height {col.height} is usable in heights "
                    f"{col.height}..{col.height + ttl}, not {height}")
    env.charge(SIGNATURE_GAS)
    message = acceptance_bytes(env.block.chain_id, file_id, col.frag_index, col.root, nbytes,
                               segments, round, col.height, uploader)
    if not verify(p.pubkey, message, col.signature):
        raise _fail(f"provider {who} did not sign round {round} of column {col.frag_index} of "
                    f"this deal as uploaded by the sender")
    return p


def _pay_column(env: _Env, file_id: bytes, deal: Deal, i: int) -> Deal:
    """One proven column-epoch: the provider earns its fee and a little reputation."""
    c = deal.columns[i]
    fee = min(deal.escrow, epoch_fee(c.price, deal_column_bytes(deal)))
    env.move(MODULE_ACCOUNT, c.provider, fee)
    p = env.need_provider(c.provider)
    env.put_provider(c.provider, replace(
        p, reputation=min(MAX_REPUTATION, p.reputation + REPUTATION_GAIN)))
    env.emit("storage_paid", file_id=file_id.hex(), frag_index=c.frag_index,
             provider=c.provider.hex(), amount=fee)
    return replace(deal, escrow=deal.escrow - fee)


def _pay_bounty(env: _Env, file_id: bytes, deal: Deal, i: int) -> Deal:
    """A repaired column passed its first audit: its repairer earns the reward held for it."""
    c = deal.columns[i]
    if not c.bounty:
        return deal
    env.move(MODULE_ACCOUNT, c.repairer, c.bounty)
    env.emit("storage_repair_paid", file_id=file_id.hex(), frag_index=c.frag_index,
             repairer=c.repairer.hex(), amount=c.bounty)
    return _with_column(deal, i, replace(c, bounty=0))


def _with_column(deal: Deal, i: int, column: Column) -> Deal:
    return replace(deal, columns=(*deal.columns[:i], column, *deal.columns[i + 1:]))


def _close_deal(env: _Env, file_id: bytes, deal: Deal, status: int) -> Deal:
    """The deal stops: its providers' space is freed, escrow, repair budget and rewards of
    repairs no audit confirmed go back."""
    nbytes = deal_column_bytes(deal)
    for c in deal.columns:
        _release(env, c.provider, nbytes)
        env.delete(_hold_key(c.provider, file_id, c.frag_index))
    env.delete(LIVE_PREFIX + file_id)
    refund = deal.escrow + deal.repair_budget + sum(c.bounty for c in deal.columns)
    env.move(MODULE_ACCOUNT, deal.owner, refund)
    env.emit("storage_deal_" + DEAL_STATUS[status], file_id=file_id.hex(),
             owner=deal.owner.hex(), refund=refund)
    return replace(deal, escrow=0, repair_budget=0, status=status,
                   columns=tuple(replace(c, bounty=0) for c in deal.columns))
