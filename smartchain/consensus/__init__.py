"""POCA consensus: Tendermint-style BFT rounds over a weighted validator set.

``ConsensusEngine`` is a pure state machine (no I/O, no clock) driven by the node;
``DurableSigner`` guards the validator key against double signing across restarts.
"""

from smartchain.consensus.engine import (
    Action,
    Application,
    Broadcast,
    BuildProposal,
    ConsensusEngine,
    Decide,
    EngineConfig,
    EvidenceFound,
    InvalidMessage,
    Message,
    RoundStep,
    ScheduleTimeout,
    Signer,
    Timeout,
    TimeoutStep,
    ValidateBlock,
)
from smartchain.consensus.signer import (
    DoubleSignError,
    DurableSigner,
    LockRecord,
    SignerStateError,
    SignState,
    SignStep,
)
from smartchain.consensus.validators import Validator, ValidatorSet, ValidatorSetData
from smartchain.consensus.votes import InvalidVote, VoteSet, make_evidence

__all__ = [
    "Action",
    "Application",
    "Broadcast",
    "BuildProposal",
    "ConsensusEngine",
    "Decide",
    "DoubleSignError",
    "DurableSigner",
    "EngineConfig",
    "EvidenceFound",
    "InvalidMessage",
    "InvalidVote",
    "LockRecord",
    "Message",
    "RoundStep",
    "ScheduleTimeout",
    "SignState",
    "SignStep",
    "Signer",
    "SignerStateError",
    "Timeout",
    "TimeoutStep",
    "ValidateBlock",
    "Validator",
    "ValidatorSet",
    "ValidatorSetData",
    "VoteSet",
    "make_evidence",
]
