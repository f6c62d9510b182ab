"""SDK methods of the contracts module (Lua): deploy, call and query contracts."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.contracts.types import Arg, Call, Deploy
from smartchain.modules.sdk import ModuleSdk, seg


class ContractsSdk(ModuleSdk):
    """Contract reads and transactions."""

    # Arguments and results are None, bool, int (64-bit), str or bytes; addresses are
    # their bech32 strings (what ctx.caller is to a contract). Values are HPC base units.

    def contract(self, address: str) -> dict[str, Any]:
        """Creator, deploy height, code hash and size, HPC balance and source."""
        return self._request("GET", f"/v1/contracts/{seg(address)}")

    def query_contract(self, address: str, function: str, args: Any = (), *,
                       caller: str | None = None, value: int = 0) -> dict[str, Any]:
        """Run ``function`` read-only on the latest state: ``{"ok", "gas_used", "results"}``
        (bytes results that are not UTF-8 come as ``{"hex": ...}``). A failing call raises
        ``ApiError`` with code ``contract_failed``."""
        body: dict[str, Any] = {"function": function, "args": [_arg_json(a) for a in args]}
        if caller is not None:
            body["caller"] = caller
        if value:
            body["value"] = str(value)
        return self._request("POST", f"/v1/contracts/{seg(address)}/query", body)

    def call_contract(self, key: PrivateKey, address: str, function: str, args: Any = (), *,
                      value: int = 0, gas_limit: int | None = None, wait: bool = True,
                      gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call ``function`` in a transaction, sending ``value`` base units of HPC with it.
        Without ``gas_limit`` the call is simulated first (``send_tx``), so a call that would
        fail raises ``SimulationFailed`` instead of being sent."""
        return self.send_tx(key, "contracts/call",
                            Call(from_bech32(address), function, _args(args), value),
                            gas_limit=gas_limit, wait=wait, gas_price=gas_price, **kwargs)

    def deploy_contract(self, key: PrivateKey, source: str | bytes, args: Any = (), *,
                        value: int = 0, gas_limit: int | None = None, wait: bool = True,
                        gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Deploy Lua ``source``; ``init(*args)`` runs once, with ``value`` base units of HPC
        moved to the new contract. The receipt's ``contract_deploy`` event names its address
        (``deployed_address`` reads it). Without ``gas_limit`` it is simulated first."""
        code = source.encode() if isinstance(source, str) else source
        payload = Deploy(code, _args(args), value)
        return self.send_tx(key, "contracts/deploy", payload, gas_limit=gas_limit, wait=wait,
                            gas_price=gas_price, **kwargs)


def deployed_address(result: dict[str, Any]) -> str:
    """The new contract's address from a committed deploy (``KeyError`` if it failed)."""
    for event in result["receipt"]["events"]:
        if event["kind"] == "contract_deploy":
            return event["attributes"]["contract"]
    raise KeyError("no contract_deploy event: the deploy did not succeed")


def _args(values: Any) -> tuple[Arg, ...]:
    return tuple(Arg.of(v) for v in values)


def _arg_json(v: Any) -> Any:
    """An argument as the query API takes it: bytes travel as hex, the rest as they are."""
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if v is None or isinstance(v, bool | int | str):
        return v
    raise TypeError(f"a contract argument is None, bool, int, str or bytes, not {v!r}")
