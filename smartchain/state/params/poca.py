"""The poca (staking) module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``. docs/poca.md explains each.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U8, U32, U64, U128


@dataclass(frozen=True)
class PocaParams:
    """Candidates, stake, tiers, liveness, punishment, elimination and admission."""

    poca_epoch_blocks: U64 = 100  # tiers and the signer set are recomputed once per epoch
    poca_max_directors: U32 = 21  # the BFT set (Smartshare runs 99 agents: tested)
    poca_max_standby: U32 = 21  # standby signers ranked after the directors
    poca_max_candidates: U32 = 1_000  # bounds the epoch's ranking loop; register refused past it
    poca_min_self_stake: U128 = 100 * 10**8  # a candidate's own locked stake, at least
    poca_min_delegation: U128 = 10**8  # each delegation and undelegation, at least (anti-spam)
    poca_unbonding_blocks: U64 = 1_000  # stake leaving waits this long, still slashable
    poca_max_unbonding: U32 = 256  # unbonding entries per (candidate, delegator)
    poca_downtime_window: U32 = 100  # blocks a director's signatures are counted over
    poca_downtime_missed: U32 = 50  # missed in the window: jailed at once, seat to a standby
    poca_downtime_slash_bps: U32 = 10  # 0.1 % of stake and delegations, on a downtime jail
    poca_double_sign_slash_bps: U32 = 500  # 5 %, and tombstoned for good
    poca_jail_blocks: U64 = 100  # a jailed candidate may unjail this many blocks after
    poca_attest_interval: U64 = 10  # a standby's liveness attestation, at most one per this
    poca_min_uptime_bps: U32 = 5_000  # uptime a candidate needs to qualify for a signer tier
    poca_min_competence: U64 = 1  # competence score a candidate needs to qualify
    poca_competence_epochs: U32 = 4  # verified compute is averaged over about this many epochs
    poca_compute_weight: U32 = 1  # score points per million fuel verified (per averaged epoch)
    poca_storage_weight: U32 = 1  # score points per MiB of audited storage (x pass rate)
    poca_eliminate_window: U64 = 100  # blocks an elimination proposal collects votes in
    poca_eliminate_epochs: U32 = 10  # epochs an eliminated candidate is barred from ranking
    # 0: open; 1: approval (a new candidate ranks once > 1/2 of director power approves it)
    poca_signer_admission: U8 = 0
    # Genesis validators are qualified without proven competence for this many epochs
    # (0: until outranked): the bootstrap of a chain that has no verified work yet.
    poca_bootstrap_epochs: U64 = 0
