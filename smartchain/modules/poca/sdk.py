"""SDK methods of the poca module: validators, stake and the signers' votes."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import address_of, from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.poca.types import (
    NO_PROOF,
    ApproveCandidate,
    Attest,
    Delegate,
    Eliminate,
    Register,
    Undelegate,
    Unjail,
    Unregister,
    VoteEliminate,
    register_proof_bytes,
)
from smartchain.modules.sdk import ModuleSdk, seg


class PocaSdk(ModuleSdk):
    """Validator reads and staking transactions; amounts in base units."""

    def validators(self) -> dict[str, Any]:
        """``{"epoch", "height", "validators": [...]}``, directors first."""
        return self._request("GET", "/v1/validators")

    def validator(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/validators/{seg(address)}")

    def delegations(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/delegations/{seg(address)}")

    def community_pool(self) -> int:
        return int(self._request("GET", "/v1/poca/pool")["community_pool"])

    def register_validator(self, key: PrivateKey, consensus_key: PrivateKey, stake: int, *,
                           moniker: str = "", chain_id: str | None = None,
                           **kwargs: Any) -> dict[str, Any]:
        """Bind ``consensus_key`` (the node's) to ``key``'s account and lock ``stake``."""
        proof = NO_PROOF
        if address_of(consensus_key.public_key) != key.address:
            chain = chain_id or self.status()["chain_id"]
            proof = consensus_key.sign(register_proof_bytes(chain, key.address))
        return self.send_tx(key, "poca/register",
                            Register(consensus_key.public_key, stake, moniker, proof),
                            chain_id=chain_id, **kwargs)

    def delegate(self, key: PrivateKey, validator: str, amount: int,
                 **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/delegate", Delegate(from_bech32(validator), amount),
                            **kwargs)

    def undelegate(self, key: PrivateKey, validator: str, amount: int,
                   **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/undelegate", Undelegate(from_bech32(validator), amount),
                            **kwargs)

    def unregister_validator(self, key: PrivateKey, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/unregister", Unregister(), **kwargs)

    def unjail(self, key: PrivateKey, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/unjail", Unjail(), **kwargs)

    def eliminate(self, key: PrivateKey, target: str, reason: str,
                  **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/eliminate", Eliminate(from_bech32(target), reason),
                            **kwargs)

    def vote_eliminate(self, key: PrivateKey, target: str, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/vote_eliminate", VoteEliminate(from_bech32(target)),
                            **kwargs)

    def approve_validator(self, key: PrivateKey, candidate: str,
                          **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "poca/approve", ApproveCandidate(from_bech32(candidate)),
                            **kwargs)

    def attest(self, key: PrivateKey, height: int | None = None,
               **kwargs: Any) -> dict[str, Any]:
        """A standby's liveness attestation of the latest height it saw."""
        seen = int(self.status()["height"]) if height is None else height
        return self.send_tx(key, "poca/attest", Attest(seen), **kwargs)
