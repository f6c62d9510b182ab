"""The gov module's wire types: payloads, stored records, key prefixes and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a wallet can
build and read governance transactions without the node.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from smartchain.codec import U8, U32, U64, U128, Fixed20, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged

# The account holding every deposit of a proposal still in its deposit or voting period.
MODULE_ACCOUNT = h256_tagged(b"smart/module", b"gov")[:20]

BPS = 10_000
MAX_TITLE = 140
MAX_DESCRIPTION = 4_000
MAX_CHANGES = 32  # parameters one proposal changes
MAX_KEY = 64
MAX_VALUE = 64
NO_ADDRESS = bytes(20)

PARAM, SPEND, TEXT = "param", "spend", "text"
KINDS = (PARAM, SPEND, TEXT)

YES, NO, ABSTAIN, VETO = range(4)
OPTIONS = ("yes", "no", "abstain", "veto")

DEPOSIT, VOTING, PASSED, REJECTED, VETOED, NO_QUORUM, FAILED, EXPIRED = range(8)
STATUS = ("deposit", "voting", "passed", "rejected", "vetoed", "no_quorum", "failed",
          "expired")
OPEN = (DEPOSIT, VOTING)

NEXT_ID_KEY = b"gov/next"  # u64: the next proposal's id (ids start at 1)
OPEN_KEY = b"gov/open"  # u64: proposals in their deposit or voting period
PROPOSAL_PREFIX = b"gov/prop/"  # + id -> Proposal
DEPOSIT_PREFIX = b"gov/dep/"  # + id + depositor -> u128 deposited
VOTE_PREFIX = b"gov/vote/"  # + id + voter -> u8 option
DEPOSIT_QUEUE = b"gov/dq/"  # + deposit end height + id -> MARK (expires unless funded)
VOTING_QUEUE = b"gov/vq/"  # + voting end height + id -> MARK (tallied in that end_block)
CHANGED_PREFIX = b"gov/changed/"  # + param name -> u64 height the last change took effect
MARK = b"\x01"

U64_BE = struct.Struct(">Q")


def be64(n: int) -> bytes:
    return U64_BE.pack(n)


@dataclass(frozen=True, slots=True)
class ParamChange(Struct):
    """``key=value`` as on the command line: the value parses by the field's type."""

    key: Str
    value: Str


@dataclass(frozen=True, slots=True)
class Tally(Struct):
    """Locked HPC (base units) behind each option, and all locked HPC when counted."""

    yes: U128
    no: U128
    abstain: U128
    veto: U128
    locked: U128


EMPTY_TALLY = Tally(0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Proposal(Struct):
    id: U64
    kind: Str  # PARAM, SPEND or TEXT
    title: Str
    description: Str
    proposer: Fixed20
    changes: list_of[ParamChange]  # PARAM
    recipient: Fixed20  # SPEND: who the community pool pays
    amount: U128  # SPEND: base units
    status: U8
    submit_height: U64
    deposit_end: U64  # the height its deposit period ends (expires unless funded)
    voting_start: U64  # 0 until funded
    voting_end: U64  # the height whose end_block tallies it
    total_deposit: U128
    depositors: U32
    votes: U32  # voters counted (bounded by gov_max_votes)
    tally: Tally
    note: Str  # why it ended as it did


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Propose(Struct):
    """A proposal and its first deposit. ``changes`` only for PARAM; ``recipient`` and
    ``amount`` only for SPEND."""

    kind: Str
    title: Str
    description: Str
    changes: list_of[ParamChange]
    recipient: Fixed20
    amount: U128
    deposit: U128


@dataclass(frozen=True, slots=True)
class Deposit(Struct):
    proposal: U64
    amount: U128


@dataclass(frozen=True, slots=True)
class Vote(Struct):
    proposal: U64
    option: U8  # YES, NO, ABSTAIN, VETO


PAYLOADS: dict[str, type[Struct]] = {
    "gov/propose": Propose,
    "gov/deposit": Deposit,
    "gov/vote": Vote,
}


def option_of(text: str) -> int:
    """``yes``/``no``/``abstain``/``veto`` as the vote's option (``ValueError`` otherwise)."""
    try:
        return OPTIONS.index(text.lower())
    except ValueError:
        raise ValueError(f"a vote is one of {', '.join(OPTIONS)}, not {text!r}") from None
