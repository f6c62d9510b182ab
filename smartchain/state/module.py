"""The module pattern: each feature registers its messages, queries and block hooks.

Adding a feature means adding a ``Module`` and listing it in the app; the executor never
changes. Handlers see only a ``TxContext``: the buffered store, the block's height, time
and proposer, the sender, a gas meter and an event list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from smartchain.codec import Struct
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.consensus import EMPTY_COMMIT, Commit, DuplicateVoteEvidence
from smartchain.types.errors import Code, OutOfGas, TxError
from smartchain.types.tx import Event, Transaction


class GasMeter:
    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def consume(self, amount: int) -> None:
        self.used += amount
        if self.used > self.limit:
            self.used = self.limit
            raise OutOfGas(self.limit)


@dataclass(slots=True)
class BlockInfo:
    chain_id: str
    height: int
    time_ms: int
    proposer: bytes  # address (20 bytes) that receives fees and the block reward
    params: Params
    fees: int = 0  # collected during the block, paid to the proposer at end_block
    cache: dict[str, Any] = field(default_factory=dict)  # per-execution scratch of modules
    beacon: bytes = bytes(32)  # the chain's randomness: the block's last_commit_hash
    # Who signed the previous block (indices into the signer set of ``height - 1``) and the
    # double-sign evidence this block records: what the staking module judges signers by.
    last_commit: Commit = EMPTY_COMMIT
    evidence: tuple[DuplicateVoteEvidence, ...] = ()


class TxContext:
    """What a handler sees of the world while it runs one transaction."""

    __slots__ = ("block", "events", "gas", "sender", "store")

    def __init__(self, store: Overlay, block: BlockInfo, sender: bytes, gas: GasMeter) -> None:
        self.store = store
        self.block = block
        self.sender = sender  # address
        self.gas = gas
        self.events: list[Event] = []

    def emit(self, kind: str, **attrs: object) -> None:
        self.events.append(Event.of(kind, **attrs))

    def write(self, key: bytes, value: bytes) -> None:
        self.gas.consume(self.block.params.gas_per_write)
        self.store.set(key, value)

    def fail(self, message: str, code: Code = Code.FAILED) -> TxError:
        return TxError(code, message)


Handler = Callable[[TxContext, Any], None]
Query = Callable[[Any, dict[str, str]], Any]


@dataclass(frozen=True, slots=True)
class Msg:
    """One transaction kind: its payload type, handler and how much HPC it can move out."""

    payload: type[Struct]
    handler: Handler
    validate: Callable[[Any], None] = lambda payload: None  # stateless checks, raise TxError
    spend: Callable[[Any], int] = lambda payload: 0  # HPC leaving the sender besides the fee
    # Stateless checks too costly to run before the signature is verified (compiling a
    # contract): run only on signed transactions, so unsigned junk costs no more than a
    # signature check. Raise TxError.
    validate_signed: Callable[[Any], None] = lambda payload: None
    # What ``validate_signed`` and ``signatures`` cost, in signature checks (budgets of
    # unproven gossip).
    signed_check_cost: Callable[[Any], int] = lambda payload: 0
    # Ed25519 signatures the payload carries besides the sender's, over bytes that name the
    # chain id: (public key, signed bytes, signature, whose, for the error). The node
    # verifies them with the transaction's own signature, in its parallel verifier, on
    # admission and for every block it receives: a forged one never reaches a block, and
    # handlers only check that the keys are the right ones.
    signatures: Callable[[Any, str], list[tuple[bytes, bytes, bytes, str]]] = (
        lambda payload, chain_id: [])


class Module:
    """Base class: override what the feature needs."""

    name: str = ""

    def messages(self) -> dict[str, Msg]:
        return {}

    def queries(self) -> dict[str, Query]:
        return {}

    def init_genesis(self, store: Overlay, genesis: Any) -> None:
        pass

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        return []

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        return []

    def invariants(self, view: Any) -> list[str]:
        """What is wrong with the module's books in ``view`` (committed state or an overlay),
        one sentence each; empty when they hold. Tests run every module's after every block."""
        return []


@runtime_checkable
class Auth(Protocol):
    """The role one module of the app plays for the executor: it checks the sender's nonce
    and takes the maximum fee before a handler runs, then settles the fee after. The core
    depends on this role, not on the module that plays it (the bank today)."""

    def ante(self, store: Overlay, tx: Transaction, sender: bytes) -> None:
        """Check the nonce and fee cover, take the maximum fee, bump the nonce; raise
        ``TxError`` if the transaction cannot be in a block at all."""

    def settle_fee(self, store: Overlay, tx: Transaction, sender: bytes, gas_used: int,
                   block: BlockInfo) -> int:
        """Refund the unused gas and return the fee charged."""
