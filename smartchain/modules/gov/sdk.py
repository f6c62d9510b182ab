"""SDK methods of the gov module: proposals, deposits, votes, and the governed params."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.gov.types import (
    NO_ADDRESS,
    PARAM,
    SPEND,
    TEXT,
    Deposit,
    ParamChange,
    Propose,
    Vote,
    option_of,
)
from smartchain.modules.sdk import ModuleSdk


def proposal_id(result: dict[str, Any]) -> int:
    """The id from a committed ``propose`` (``KeyError`` if it failed)."""
    for event in result["receipt"]["events"]:
        if event["kind"] == "gov_propose":
            return int(event["attributes"]["proposal"])
    raise KeyError("no gov_propose event: the proposal was not made")


class GovSdk(ModuleSdk):
    """Governance reads and transactions; amounts in base units."""

    def proposals(self, status: str = "all") -> list[dict[str, Any]]:
        """Newest first (at most 100); ``status`` one of all, deposit, voting, passed ..."""
        query = urllib.parse.urlencode({"status": status})
        return self._request("GET", f"/v1/gov/proposals?{query}")["proposals"]

    def proposal(self, pid: int) -> dict[str, Any]:
        """A proposal with its deposits, ballots and (while voting) the running tally."""
        return self._request("GET", f"/v1/gov/proposals/{int(pid)}")

    def governed_params(self) -> dict[str, dict[str, Any]]:
        """Every param: ``{"value": text, "changed_at": height}`` (0: as in genesis)."""
        return self._request("GET", "/v1/gov/params")["params"]

    def propose_params(self, key: PrivateKey, changes: Iterable[tuple[str, str]], *,
                       title: str, deposit: int, description: str = "",
                       **kwargs: Any) -> dict[str, Any]:
        """Propose ``(name, value)`` param changes (values as text, e.g. ``"5"``)."""
        msg = Propose(PARAM, title, description,
                      tuple(ParamChange(k, v) for k, v in changes), NO_ADDRESS, 0, deposit)
        return self.send_tx(key, "gov/propose", msg, **kwargs)

    def propose_spend(self, key: PrivateKey, to: str, amount: int, *, title: str,
                      deposit: int, description: str = "", **kwargs: Any) -> dict[str, Any]:
        """Propose paying ``amount`` from the community pool to ``to``."""
        msg = Propose(SPEND, title, description, (), from_bech32(to), amount, deposit)
        return self.send_tx(key, "gov/propose", msg, **kwargs)

    def propose_text(self, key: PrivateKey, *, title: str, deposit: int,
                     description: str = "", **kwargs: Any) -> dict[str, Any]:
        msg = Propose(TEXT, title, description, (), NO_ADDRESS, 0, deposit)
        return self.send_tx(key, "gov/propose", msg, **kwargs)

    def deposit(self, key: PrivateKey, pid: int, amount: int, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "gov/deposit", Deposit(pid, amount), **kwargs)

    def vote(self, key: PrivateKey, pid: int, option: str, **kwargs: Any) -> dict[str, Any]:
        """``option``: yes, no, abstain or veto (a later vote replaces an earlier one)."""
        return self.send_tx(key, "gov/vote", Vote(pid, option_of(option)), **kwargs)
