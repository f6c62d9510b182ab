"""SDK methods of the rewards module: read what is accrued, withdraw it, set a commission."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.rewards.types import SetCommission, Withdraw
from smartchain.modules.sdk import ModuleSdk, seg


class RewardsSdk(ModuleSdk):
    """Rewards reads and transactions; amounts in base units."""

    def rewards(self, address: str) -> dict[str, Any]:
        """``{"accrued", "delegations": [...], "total", "commission"}`` of ``address``."""
        return self._request("GET", f"/v1/rewards/{seg(address)}")

    def rewards_epochs(self) -> dict[str, Any]:
        """The epoch running, the last settled and the curve (``GET /v1/rewards``)."""
        return self._request("GET", "/v1/rewards")

    def withdraw_rewards(self, key: PrivateKey, **kwargs: Any) -> dict[str, Any]:
        """Withdraw everything accrued to ``key``'s account and its delegations."""
        return self.send_tx(key, "rewards/withdraw", Withdraw(), **kwargs)

    def set_commission(self, key: PrivateKey, rate_bps: int, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "rewards/set_commission", SetCommission(rate_bps), **kwargs)
