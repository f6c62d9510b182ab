"""The rewards module's wire types: payloads, stored records, key prefixes and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a wallet can
build and read rewards transactions without the node.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, U128, Bool, Fixed20, Fixed32, Struct, list_of
from smartchain.crypto.hashing import h256_tagged

# The account that holds every minted reward not yet withdrawn: its bank balance is the sum
# of the accounts' accrued rewards and what the validators' delegators are owed.
MODULE_ACCOUNT = h256_tagged(b"smart/module", b"rewards")[:20]

BPS = 10_000
# Fixed-point scale of the reward per delegation share (``Pool.per_share``): 10^27 keeps a
# share's part of one base unit exact enough, and 256 bits hold any sum the cap allows.
SCALE = 10**27

ACCRUED_PREFIX = b"rewards/acc/"  # + address -> u128: rewards it may withdraw now
POOL_PREFIX = b"rewards/pool/"  # + validator operator -> Pool
MARK_PREFIX = b"rewards/mark/"  # + delegator + operator -> 32-byte per-share mark
COMMISSION_PREFIX = b"rewards/comm/"  # + operator -> Commission (absent: the default)
WORK_PREFIX = b"rewards/work/"  # + provider -> Work of the epoch running
TALLY_KEY = b"rewards/tally"  # Tally of the epoch running
LAST_KEY = b"rewards/last"  # EpochSummary of the last epoch settled


@dataclass(frozen=True, slots=True)
class Pool(Struct):
    """A validator's delegators' rewards, F1-style: the reward per share so far (x SCALE,
    big-endian 32 bytes), and what its delegators are owed but have not withdrawn."""

    per_share: Fixed32
    owed: U128


@dataclass(frozen=True, slots=True)
class Commission(Struct):
    rate_bps: U32
    changed: U64  # height of the last change


@dataclass(frozen=True, slots=True)
class Work(Struct):
    """A provider's verified work in the epoch running."""

    fuel: U128  # compute fuel of results a quorum agreed on
    storage: U128  # bytes of column-epochs whose audits it passed
    bandwidth: U128  # bytes of bandwidth receipts it was paid
    failed: Bool  # an audit of one of its columns was missed this epoch


@dataclass(frozen=True, slots=True)
class Count(Struct):
    key: Fixed32  # consensus public key
    n: U64


@dataclass(frozen=True, slots=True)
class Tally(Struct):
    """The epoch running: from ``start``, who proposed and who signed (by consensus key;
    one record, one write per block), and the standby signers ranked when it began."""

    start: U64
    proposals: list_of[Count]
    signatures: list_of[Count]
    standbys: list_of[Fixed20]


@dataclass(frozen=True, slots=True)
class EpochSummary(Struct):
    """What the last settled epoch measured and minted (figures in bps of 10000)."""

    start: U64
    end: U64
    schedule: U128  # the most the halving schedule allowed these heights
    compute_bps: U32
    storage_bps: U32
    bandwidth_bps: U32
    utilisation_bps: U32
    curve_bps: U32  # the part of ``schedule`` the curve mints at that utilisation
    minted: U128
    to_providers: U128  # of ``minted``: the resource providers' (the rest: the signers')


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Withdraw(Struct):
    """Pay the sender everything accrued to it and to its delegations."""


@dataclass(frozen=True, slots=True)
class SetCommission(Struct):
    """A validator's new commission (bounded, and rate-limited by the params)."""

    rate_bps: U32


PAYLOADS: dict[str, type[Struct]] = {
    "rewards/withdraw": Withdraw,
    "rewards/set_commission": SetCommission,
}
