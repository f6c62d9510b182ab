"""The signer set of a height, as the node reads it from committed state.

The staking module (``smartchain.modules.poca``) decides the sets; they live in state
(``poca.sets``) and are scheduled two heights ahead, so the committed state of height ``h``
knows every set up to ``h + 2``. The node never keeps a set of its own: consensus, block
sync, the status API and the P2P protection of signers all read it here.

Reads come from the event loop (consensus, API) and the block-builder thread (validating
and committing blocks) at once: each read is one LMDB snapshot, and the decoded sets are
cached by start height (a set never changes once committed), so their proposer-rotation
caches are reused from height to height.
"""

from __future__ import annotations

import bisect
import threading

from smartchain.consensus.validators import ValidatorSet
from smartchain.modules.poca.sets import set_starts, validator_set_at
from smartchain.modules.poca.types import CANDIDATE_PREFIX, JAILED, Candidate
from smartchain.state.chain import Chain

SCHEDULE_AHEAD = 2  # a set decided at height h starts at h + 2


class SignerSets:
    """``at(height)``: the signer set of ``height``, from committed state."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._cache: dict[int, ValidatorSet] = {}
        self._lock = threading.Lock()

    def at(self, height: int) -> ValidatorSet:
        """Raise ``ValueError`` for a height whose set is not decided yet (beyond the
        committed height + 2) or below 1."""
        known = self.chain.height + SCHEDULE_AHEAD  # read first: the snapshot is as new
        if not 1 <= height <= known:
            raise ValueError(f"the signer set of height {height} is not known "
                             f"(known up to {known})")
        with self.chain.reader() as view:
            starts = set_starts(view)
            i = bisect.bisect_right(starts, height) - 1
            if i < 0:
                raise ValueError(f"no signer set is scheduled for height {height}")
            with self._lock:
                cached = self._cache.get(starts[i])
            if cached is not None:
                return cached
            found = validator_set_at(view, height)
        with self._lock:
            return self._cache.setdefault(starts[i], found)

    def jailed(self) -> int:
        """Candidates jailed in committed state (read when /metrics is scraped)."""
        with self.chain.reader() as view:
            return sum(1 for _key, raw in view.iter_prefix(CANDIDATE_PREFIX)
                       if Candidate.decode(raw).status == JAILED)
