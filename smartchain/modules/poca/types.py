"""The poca module's wire types: payloads, stored records, key prefixes and constants.

Importable on their own (codec, crypto and shared types only), so an SDK, a wallet or a
node's daemon can build and read staking transactions without the node.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from smartchain.codec import (
    U8,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Fixed20,
    Fixed32,
    Fixed64,
    Str,
    Struct,
    list_of,
)
from smartchain.crypto.hashing import h256_tagged
from smartchain.types.amount import UNITS_PER_HPC

# The account that holds every locked stake, delegation, unbonding entry and the community
# pool: its bank balance is their sum (the module's invariant).
MODULE_ACCOUNT = h256_tagged(b"smart/module", b"poca")[:20]

BPS = 10_000
MAX_MONIKER = 64
MAX_REASON = 256
NO_PROOF = bytes(64)  # the register proof when the sender IS address_of(pubkey)

# Candidate status (the API's ``status``).
ACTIVE, JAILED, TOMBSTONED, ELIMINATED = range(4)
STATUS = ("active", "jailed", "tombstoned", "eliminated")

# Tiers (the API's ``tier``), decided at each epoch and on a takeover.
DIRECTOR, STANDBY_SIGNER, STANDBY_COMPUTE, ORDINARY = range(4)
TIERS = ("director", "standby_signer", "standby_compute", "ordinary")

ADMISSION_OPEN, ADMISSION_APPROVAL = 0, 1  # poca_signer_admission
ADMISSION = ("open", "approval")

CANDIDATE_PREFIX = b"poca/cand/"  # + operator address -> Candidate
RANKED_PREFIX = b"poca/ranked/"  # + operator: registered, not tombstoned (the epoch's loop)
KEY_PREFIX = b"poca/key/"  # + consensus public key -> operator address (a key binds once)
DELEGATION_PREFIX = b"poca/del/"  # + delegator + operator -> Delegation (shares)
UNBONDING_PREFIX = b"poca/unb/"  # + operator + seq -> Unbonding (slashable while waiting)
UNBONDING_QUEUE = b"poca/unbq/"  # + completion height + operator + seq -> MARK
HELD_PREFIX = b"poca/held/"  # + operator -> MARK: the candidates holding HPC (what a tally reads)
UNBONDING_COUNT = b"poca/unbn/"  # + operator + owner -> entries waiting (u32 big-endian)
LIVENESS_PREFIX = b"poca/live/"  # + consensus public key -> Liveness (directors only)
ELIMINATION_PREFIX = b"poca/elim/"  # + target operator -> Elimination
APPROVAL_PREFIX = b"poca/appr/"  # + candidate operator -> Approval (admission mode)
RANKING_KEY = b"poca/ranking"  # Ranking: the tiers of the current epoch
POOL_KEY = b"poca/pool"  # the community pool (u128 big-endian): slashed HPC
SEQ_KEY = b"poca/seq"  # the next unbonding entry's sequence number
MARK = b"\x01"

U64_BE = struct.Struct(">Q")


# --- stored records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate(Struct):
    """A registered signer candidate, keyed by its operator account."""

    pubkey: Fixed32  # consensus key (what the signer set names)
    moniker: Str
    self_stake: U128  # the operator's own locked stake (0 once unregistered)
    delegated: U128  # tokens delegated to it (after slashes)
    shares: U128  # delegation shares outstanding: a slash lowers tokens, not shares
    status: U8  # ACTIVE, JAILED, TOMBSTONED, ELIMINATED
    jailed_until: U64  # first height ``unjail`` is accepted at
    barred_until: U64  # first epoch an eliminated candidate ranks again
    approved: Bool  # admitted (always in open mode)
    genesis: Bool  # a genesis validator (bootstrap qualification)
    registered: Bool  # False once unregistered: out of the ranking for good
    competence: U64  # the score of the last epoch (docs/poca.md)
    compute_avg: U128  # verified fuel per epoch, averaged over ``poca_competence_epochs``
    fuel_mark: U128  # the compute provider's verified fuel at the last epoch
    uptime_bps: U32  # the uptime of the last epoch
    attest_epoch: U64  # the epoch ``attests`` counts
    attests: U32  # liveness attestations in ``attest_epoch``
    last_attest: U64  # height of the last attestation (0: never)


@dataclass(frozen=True, slots=True)
class Delegation(Struct):
    shares: U128


@dataclass(frozen=True, slots=True)
class Unbonding(Struct):
    """Stake on its way out: paid to ``owner`` at ``completion`` unless slashed first."""

    owner: Fixed20
    amount: U128
    start: U64  # height it started: double-sign evidence of an earlier height slashes it
    completion: U64


@dataclass(frozen=True, slots=True)
class Liveness(Struct):
    """A director's recent signatures: bit ``h % poca_downtime_window`` is set when it missed
    height ``h``. Written only when a bit changes, so an honest director costs no writes."""

    since: U64  # first height tracked (the start of its current membership)
    bitmap: Bytes
    missed: U32  # set bits


@dataclass(frozen=True, slots=True)
class Ranking(Struct):
    """Who holds which tier: decided at an epoch, updated by takeovers and punishments."""

    epoch: U64
    directors: list_of[Fixed20]  # operators, in set order
    standbys: list_of[Fixed20]  # standby signers, best first (the next to take a seat)
    compute: list_of[Fixed20]  # standby compute


@dataclass(frozen=True, slots=True)
class Elimination(Struct):
    proposer: Fixed20
    reason: Str
    start: U64  # height proposed: votes count until start + poca_eliminate_window
    voters: list_of[Fixed20]  # operators of the directors who voted yes (proposer first)


@dataclass(frozen=True, slots=True)
class Approval(Struct):
    voters: list_of[Fixed20]  # operators of the directors who approved


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register(Struct):
    """Bind a consensus key to the sender and lock ``stake`` (at least ``poca_min_self_stake``).

    ``proof`` is the consensus key's signature of ``register_proof_bytes(chain_id, sender)``,
    so nobody binds a key they do not hold; ``NO_PROOF`` when the sender is the key's own
    address (the transaction's signature already proves it)."""

    pubkey: Fixed32
    stake: U128
    moniker: Str
    proof: Fixed64 = NO_PROOF


@dataclass(frozen=True, slots=True)
class Delegate(Struct):
    validator: Fixed20  # the candidate's operator address
    amount: U128


@dataclass(frozen=True, slots=True)
class Undelegate(Struct):
    validator: Fixed20
    amount: U128  # base units of the delegation's current value


@dataclass(frozen=True, slots=True)
class Unregister(Struct):
    pass


@dataclass(frozen=True, slots=True)
class Unjail(Struct):
    pass


@dataclass(frozen=True, slots=True)
class Eliminate(Struct):
    target: Fixed20
    reason: Str


@dataclass(frozen=True, slots=True)
class VoteEliminate(Struct):
    target: Fixed20


@dataclass(frozen=True, slots=True)
class ApproveCandidate(Struct):
    candidate: Fixed20


@dataclass(frozen=True, slots=True)
class Attest(Struct):
    """A standby's "I am here and synced": the height it saw last (recent, or refused)."""

    height: U64


PAYLOADS: dict[str, type[Struct]] = {
    "poca/register": Register,
    "poca/delegate": Delegate,
    "poca/undelegate": Undelegate,
    "poca/unregister": Unregister,
    "poca/unjail": Unjail,
    "poca/eliminate": Eliminate,
    "poca/vote_eliminate": VoteEliminate,
    "poca/approve": ApproveCandidate,
    "poca/attest": Attest,
}


@dataclass(frozen=True, slots=True)
class _RegisterProof(Struct):
    chain_id: Str
    account: Fixed20


def register_proof_bytes(chain_id: str, account: bytes) -> bytes:
    """What a consensus key signs to be bound to ``account`` on ``chain_id``."""
    return h256_tagged(b"smart/poca/register", _RegisterProof(chain_id, account).encode())


def epoch_of(height: int, epoch_blocks: int) -> int:
    return height // max(1, epoch_blocks)


def power_of(tokens: int) -> int:
    """Voting power: whole HPC of stake and delegations (power reduction 1 HPC)."""
    return tokens // UNITS_PER_HPC
