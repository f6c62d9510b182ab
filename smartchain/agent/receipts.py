"""What each side of an agreement signs: the receipt rules, as functions of its progress.

A usage receipt (cumulative ``counter``, ``final``) moves money once both agents signed it,
so each side decides from what it has seen itself, never from what the other one says:

- the provider proposes a receipt every ``instalment_units`` units delivered, and a final
  one when the agreement's quantity is delivered or the consumer ended the service; it
  signs a countersigned receipt only up to what it delivered, and a final one only where it
  would have proposed it (a consumer cannot close the agreement early by countersigning
  ``final``);
- the consumer countersigns only up to what it can vouch for (units received, and witnessed
  by its own device if it has one), never below what it signed before, never past the end it
  asked for or the agreement's quantity, never beyond its budget, and a final receipt only at
  the quantity or at or before its end.

Pure functions, so the rules are tested without a broker or a node.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.agent.messages import BadMessage


@dataclass(frozen=True, slots=True)
class Proposal:
    counter: int
    final: bool


def final_counter(quantity: int, end: int | None, settled: int) -> int:
    """Where the agreement ends: its quantity, or the consumer's end (never below what is
    settled on chain, which no receipt can go under)."""
    return max(settled, quantity if end is None else min(quantity, end))


def provider_proposal(delivered: int, end: int | None, quantity: int, settled: int,
                      instalment_units: int) -> Proposal | None:
    """The receipt the provider asks the consumer to countersign now, if one is due."""
    last = final_counter(quantity, end, settled)
    counter = min(max(delivered, settled), last)
    if counter >= last:
        return Proposal(counter, True)
    if counter - settled >= max(1, instalment_units):
        return Proposal(counter, False)
    return None


def provider_settles(counter: int, final: bool, *, delivered: int, end: int | None,
                     quantity: int, settled: int) -> bool:
    """Should the provider sign and submit this countersigned receipt? False: settled
    already (a repeated countersign); ``BadMessage``: never."""
    if counter > delivered:
        raise BadMessage(f"countersign of {counter} units, more than the {delivered} served")
    if final and counter < final_counter(quantity, end, settled):
        raise BadMessage(f"a final receipt at {counter}, before the agreement's end")
    return counter > settled or (final and counter == settled)


def consumer_countersigns(counter: int, final: bool, *, signed: int, signed_final: bool,
                          evidence: int, end: int | None, quantity: int, price: int,
                          budget: int) -> bool:
    """Should the consumer countersign this provider-signed receipt? False: not yet (the
    units have not all arrived); ``BadMessage``: never."""
    if counter < signed or (counter == signed and signed_final and not final):
        raise BadMessage(f"receipt of {counter} after {signed} signed")
    if counter > quantity:
        raise BadMessage(f"receipt of {counter} units, beyond the {quantity} agreed")
    if end is not None and counter > end:
        raise BadMessage(f"receipt of {counter} units, past the end at {end}")
    if final and counter < quantity and end is None:
        raise BadMessage(f"final receipt at {counter} before the end")
    if counter * price > budget:
        raise BadMessage(f"{counter} units exceed the budget")
    return counter <= evidence
