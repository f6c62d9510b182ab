"""The shared state logic: candidates, money (stake, delegations, unbonding, pool), slashing,
ranking into tiers, and the signer set scheduled from what the ranking decided."""

from __future__ import annotations

import struct
from dataclasses import replace
from typing import Any

from smartchain.consensus.validators import Validator, ValidatorSetData
from smartchain.modules.compute.keys import get_provider as compute_provider
from smartchain.modules.env import ModuleEnv
from smartchain.modules.poca.sets import schedule_set, set_starts, validator_set_at
from smartchain.modules.poca.types import (
    ACTIVE,
    ADMISSION_APPROVAL,
    BPS,
    CANDIDATE_PREFIX,
    ELIMINATED,
    HELD_PREFIX,
    KEY_PREFIX,
    LIVENESS_PREFIX,
    MARK,
    MODULE_ACCOUNT,
    POOL_KEY,
    RANKED_PREFIX,
    RANKING_KEY,
    SEQ_KEY,
    U64_BE,
    UNBONDING_COUNT,
    UNBONDING_PREFIX,
    UNBONDING_QUEUE,
    Candidate,
    Liveness,
    Ranking,
    Unbonding,
    epoch_of,
    power_of,
)
from smartchain.modules.storage.keys import get_provider as storage_provider
from smartchain.modules.storage.types import INITIAL_REPUTATION, REPUTATION_SLASH
from smartchain.state.params import Params
from smartchain.types.errors import Code, TxError

MIB = 1 << 20
MEGA_FUEL = 10**6
_U128 = struct.Struct(">QQ")
U32_BE = struct.Struct(">I")


def fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


# --- reads any module, query or test may use ----------------------------------------------


def candidate_key(operator: bytes) -> bytes:
    return CANDIDATE_PREFIX + operator


def get_candidate(view: Any, operator: bytes) -> Candidate | None:
    raw = view.get(candidate_key(operator))
    return Candidate.decode(raw) if raw is not None else None


def operator_of_key(view: Any, pubkey: bytes) -> bytes | None:
    raw = view.get(KEY_PREFIX + pubkey)
    return bytes(raw) if raw is not None else None


def get_ranking(view: Any) -> Ranking:
    raw = view.get(RANKING_KEY)
    return Ranking.decode(raw) if raw is not None else Ranking(0, (), (), ())


def community_pool(view: Any) -> int:
    raw = view.get(POOL_KEY)
    return int.from_bytes(raw, "big") if raw else 0


def get_liveness(view: Any, pubkey: bytes) -> Liveness | None:
    raw = view.get(LIVENESS_PREFIX + pubkey)
    return Liveness.decode(raw) if raw is not None else None


def tokens_of(c: Candidate) -> int:
    return c.self_stake + c.delegated


def delegation_value(c: Candidate, shares: int) -> int:
    """What ``shares`` of a candidate's delegations are worth after its slashes."""
    return shares * c.delegated // c.shares if c.shares else 0


def ranked_count(view: Any) -> int:
    return sum(1 for _ in view.iter_prefix(RANKED_PREFIX))


def unbonding_of(view: Any, operator: bytes) -> list[tuple[bytes, Unbonding]]:
    """(key, entry) of the stake leaving a candidate, oldest first."""
    return [(k, Unbonding.decode(v)) for k, v in view.iter_prefix(UNBONDING_PREFIX + operator)]


def is_bootstrap(params: Params, c: Candidate, epoch: int) -> bool:
    """A genesis validator qualifies without proven competence while the bootstrap lasts."""
    return c.genesis and (params.poca_bootstrap_epochs == 0
                          or epoch < params.poca_bootstrap_epochs)


def qualifies(params: Params, c: Candidate, epoch: int) -> bool:
    """May rank for a signer tier: registered, active, admitted (approved, or admission is
    open: one waiting when governance opened it is not stranded), with at least one whole
    HPC of power and (unless bootstrapped) the minimum stake, competence and uptime."""
    admitted = c.approved or params.poca_signer_admission != ADMISSION_APPROVAL
    if not (c.registered and c.status == ACTIVE and admitted and power_of(tokens_of(c)) > 0):
        return False
    if is_bootstrap(params, c, epoch):
        return True
    return (c.self_stake >= params.poca_min_self_stake
            and c.competence >= params.poca_min_competence
            and c.uptime_bps >= params.poca_min_uptime_bps)


# --- the module's env ------------------------------------------------------------------------


class Env(ModuleEnv[Candidate]):
    """``ModuleEnv`` over candidates (cached, written once at ``flush``), the pool, the
    unbonding entries and the ranking."""

    __slots__ = ()

    def provider_key(self, address: bytes) -> bytes:
        return candidate_key(address)

    def load_provider(self, address: bytes) -> Candidate | None:
        return get_candidate(self.store, address)

    def flush(self) -> None:
        """Write the changed candidates, and keep the index of those holding HPC: a
        candidate that left with nothing (its record stays for good) drops out of it."""
        for op in sorted(self.dirty):
            key, held = HELD_PREFIX + op, tokens_of(self.providers[op]) > 0
            if held and self.store.get(key) is None:
                self.set(key, MARK)
            elif not held:
                self.delete(key)
        super().flush()

    def candidate(self, operator: bytes) -> Candidate:
        c = self.provider(operator)
        if c is None:
            raise fail(f"{operator.hex()} is not a registered candidate")
        return c

    @property
    def height(self) -> int:
        return self.block.height

    @property
    def epoch(self) -> int:
        return epoch_of(self.height, self.params.poca_epoch_blocks)

    def add_pool(self, amount: int) -> None:
        if amount:
            self.set(POOL_KEY, (community_pool(self.store) + amount).to_bytes(16, "big"))

    def next_seq(self) -> int:
        raw = self.store.get(SEQ_KEY)
        seq = U64_BE.unpack(raw)[0] if raw else 0
        self.set(SEQ_KEY, U64_BE.pack(seq + 1))
        return seq

    def start_unbonding(self, operator: bytes, owner: bytes, amount: int) -> int:
        """Move ``amount`` (already taken off the candidate) into the unbonding queue;
        returns the height it is paid at. Refused when ``owner`` has ``poca_max_unbonding``
        entries of this candidate waiting: a bound per delegator, so none can fill the
        queue for the others (each entry is priced by ``poca_min_delegation``, which with
        it bounds what a slash loops over)."""
        count_key = UNBONDING_COUNT + operator + owner
        raw = self.store.get(count_key)
        waiting = U32_BE.unpack(raw)[0] if raw else 0
        if waiting >= self.params.poca_max_unbonding:
            raise fail(f"{owner.hex()} has {waiting} unbonding entries waiting from candidate "
                       f"{operator.hex()} (at most poca_max_unbonding="
                       f"{self.params.poca_max_unbonding}); try again when the oldest "
                       "completes")
        self.set(count_key, U32_BE.pack(waiting + 1))
        completion = self.height + self.params.poca_unbonding_blocks
        seq = U64_BE.pack(self.next_seq())
        self.set(UNBONDING_PREFIX + operator + seq,
                 Unbonding(owner, amount, self.height, completion).encode())
        self.set(UNBONDING_QUEUE + U64_BE.pack(completion) + operator + seq, MARK)
        return completion

    def complete_unbonding(self) -> None:
        """Pay every entry due at this height (each was a paid transaction)."""
        due = []
        for key, _ in self.store.iter_prefix(UNBONDING_QUEUE):
            if U64_BE.unpack_from(key, len(UNBONDING_QUEUE))[0] > self.height:
                break
            due.append(key)
        for key in due:
            operator = key[len(UNBONDING_QUEUE) + 8:-8]
            entry_key = UNBONDING_PREFIX + key[len(UNBONDING_QUEUE) + 8:]
            raw = self.store.get(entry_key)
            assert raw is not None, "an unbonding queue key names no entry"
            entry = Unbonding.decode(raw)
            self.move(MODULE_ACCOUNT, entry.owner, entry.amount)
            self.delete(entry_key)
            self.delete(key)
            count_key = UNBONDING_COUNT + operator + entry.owner
            counted = self.store.get(count_key)
            assert counted is not None, "an unbonding entry its owner's count misses"
            left = U32_BE.unpack(counted)[0] - 1
            if left:
                self.set(count_key, U32_BE.pack(left))
            else:
                self.delete(count_key)
            self.emit("poca_unbonded", owner=entry.owner.hex(), amount=entry.amount)

    # --- punishment ----------------------------------------------------------------------

    def slash(self, operator: bytes, bps: int, offence_height: int | None = None) -> int:
        """Take ``bps`` of the candidate's stake and delegations (and, for an offence at
        ``offence_height``, of the unbonding entries started at or after it) into the
        community pool; returns the amount."""
        c = self.candidate(operator)
        own = c.self_stake * bps // BPS
        dele = c.delegated * bps // BPS
        self.put_provider(operator, replace(c, self_stake=c.self_stake - own,
                                            delegated=c.delegated - dele))
        total = own + dele
        if offence_height is not None:
            for key, entry in unbonding_of(self.store, operator):
                cut = entry.amount * bps // BPS if entry.start >= offence_height else 0
                if cut:
                    self.set(key, replace(entry, amount=entry.amount - cut).encode())
                    total += cut
        self.add_pool(total)
        self.emit("poca_slash", operator=operator.hex(), bps=bps, amount=total)
        return total

    def leave_ranking(self, operator: bytes) -> None:
        """Out of every tier now; a director's seat goes to the best standby from h+2."""
        r = get_ranking(self.store)
        if operator not in r.directors + r.standbys + r.compute:
            return
        directors = [d for d in r.directors if d != operator]
        standbys = [s for s in r.standbys if s != operator]
        if len(directors) < len(r.directors):
            for s in list(standbys):
                cand = self.provider(s)
                if cand is not None and qualifies(self.params, cand, self.epoch):
                    standbys.remove(s)
                    directors.append(s)
                    self.emit("poca_takeover", standby=s.hex(), seat_of=operator.hex())
                    break
        if not directors:  # a set never becomes empty: the last director keeps its seat
            directors = list(r.directors)
        directors = self.in_set_order(directors)
        self.put_ranking(Ranking(r.epoch, tuple(directors), tuple(standbys),
                                 tuple(x for x in r.compute if x != operator)))
        self.schedule(directors)

    def in_set_order(self, operators: list[bytes]) -> list[bytes]:
        """Voting power, highest first; ties by consensus key (every node sorts alike)."""
        def key(op: bytes) -> tuple[int, bytes]:
            c = self.candidate(op)
            return -tokens_of(c), c.pubkey
        return sorted(operators, key=key)

    def put_ranking(self, ranking: Ranking) -> None:
        self.set(RANKING_KEY, ranking.encode())

    def schedule(self, directors: list[bytes], start: int | None = None) -> None:
        """The set of ``directors`` from h+2 (nothing written if it is the last one)."""
        vals = []
        for op in directors:
            c = self.candidate(op)
            vals.append(Validator(c.pubkey, max(1, power_of(tokens_of(c))), c.moniker))
        start = self.height + 2 if start is None else start
        if set_starts(self.store):
            last = validator_set_at(self.store, start)
            if tuple(last.validators) == tuple(vals):
                return
        self.charge(self.params.gas_per_write)
        schedule_set(self.store, ValidatorSetData(start, tuple(vals)))
        self.emit("poca_set", start=start, size=len(vals))

    # --- epochs --------------------------------------------------------------------------

    def score(self, operator: bytes, c: Candidate, was_director: bool, epoch: int) -> Candidate:
        """The candidate's competence and uptime for the epoch ending (docs/poca.md)."""
        p = self.params
        prov = compute_provider(self.store, operator)
        fuel = prov.verified_fuel if prov is not None else 0
        window = max(1, p.poca_competence_epochs)
        gained = max(0, fuel - c.fuel_mark)
        compute_avg = (c.compute_avg * (window - 1) + gained) // window
        compute = compute_avg * p.poca_compute_weight // MEGA_FUEL
        storage = 0
        sp = storage_provider(self.store, operator)
        if sp is not None and sp.active:
            passes = max(0, sp.reputation - INITIAL_REPUTATION + REPUTATION_SLASH * sp.misses)
            audits = passes + sp.misses
            rate = passes * BPS // audits if audits else 0
            storage = sp.used * rate // BPS * p.poca_storage_weight // MIB
        if was_director:
            live = get_liveness(self.store, c.pubkey)
            missed = live.missed if live is not None else 0
            w = max(1, p.poca_downtime_window)
            uptime = max(0, w - missed) * BPS // w
        else:
            n = c.attests if c.attest_epoch == epoch else 0
            uptime = min(BPS, n * p.poca_attest_interval * BPS // max(1, p.poca_epoch_blocks))
        return replace(c, competence=compute + storage, compute_avg=compute_avg,
                       fuel_mark=max(fuel, c.fuel_mark), uptime_bps=uptime)

    def rank(self, epoch: int, next_epoch: int) -> Ranking:
        """Score every ranked candidate for the epoch ending, then tier them for the next."""
        old = get_ranking(self.store)
        qualified: list[bytes] = []
        computing: set[bytes] = set()
        for key, _ in list(self.store.iter_prefix(RANKED_PREFIX)):
            op = key[len(RANKED_PREFIX):]
            c = self.candidate(op)
            if c.status == ELIMINATED and next_epoch >= c.barred_until:
                c = replace(c, status=ACTIVE)
            new = self.score(op, c, op in old.directors, epoch)
            if new != self.candidate(op):
                self.put_provider(op, new)
            if qualifies(self.params, new, next_epoch):
                qualified.append(op)
                if new.compute_avg:
                    computing.add(op)
        order = self.in_set_order(qualified)
        n, m = self.params.poca_max_directors, self.params.poca_max_standby
        directors, standbys = order[:n], order[n:n + m]
        rest = tuple(op for op in order[n + m:] if op in computing)
        if not directors:  # no one qualifies: the set stays as it is
            directors = list(old.directors)
        return Ranking(next_epoch, tuple(directors), tuple(standbys), rest)

    def run_epoch(self) -> None:
        epoch = self.epoch
        ranking = self.rank(epoch, epoch + 1)
        self.flush()
        self.put_ranking(ranking)
        self.schedule(list(ranking.directors))
        self.emit("poca_epoch", epoch=epoch + 1, directors=len(ranking.directors),
                  standbys=len(ranking.standbys))
