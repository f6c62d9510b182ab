"""The tokens module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``: the state layer assembles ``Params`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64


@dataclass(frozen=True)
class TokensParams:
    token_issue_gas: U64 = 1_000_000  # a symbol is claimed for ever: priced against squatting
