"""What each agent signs of a usage receipt (smartchain/agent/receipts.py): the provider
proposes and settles only what it delivered, the consumer countersigns only what it can
vouch for, and neither can be talked into closing early or going backwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartchain.agent.market import trim_units
from smartchain.agent.messages import BadMessage
from smartchain.agent.receipts import (
    Proposal,
    consumer_countersigns,
    provider_proposal,
    provider_settles,
)

QUANTITY, PRICE = 12, 1_000


def _consumer(counter: int, final: bool = False, *, signed: int = 0,
              signed_final: bool = False, evidence: int = QUANTITY, end: int | None = None,
              budget: int = 10**9) -> bool:
    return consumer_countersigns(counter, final, signed=signed, signed_final=signed_final,
                                 evidence=evidence, end=end, quantity=QUANTITY, price=PRICE,
                                 budget=budget)


def _settles(counter: int, final: bool = False, *, delivered: int = QUANTITY,
             end: int | None = None, settled: int = 0) -> bool:
    return provider_settles(counter, final, delivered=delivered, end=end, quantity=QUANTITY,
                            settled=settled)


# --- the provider ---------------------------------------------------------------------------


def test_the_provider_proposes_a_receipt_once_an_instalment_of_units_is_delivered() -> None:
    assert provider_proposal(2, None, QUANTITY, 0, 3) is None
    assert provider_proposal(3, None, QUANTITY, 0, 3) == Proposal(3, False)
    assert provider_proposal(5, None, QUANTITY, 3, 3) is None  # 2 since the last settled
    assert provider_proposal(7, None, QUANTITY, 3, 3) == Proposal(7, False)


def test_the_provider_proposes_the_final_receipt_at_the_quantity_never_beyond() -> None:
    assert provider_proposal(QUANTITY, None, QUANTITY, 9, 3) == Proposal(QUANTITY, True)
    assert provider_proposal(QUANTITY + 4, None, QUANTITY, 9, 3) == Proposal(QUANTITY, True)


def test_after_the_consumer_ends_the_final_receipt_waits_for_the_units_up_to_the_end() -> None:
    assert provider_proposal(4, 6, 60, 2, 2) == Proposal(4, False)
    assert provider_proposal(6, 6, 60, 4, 2) == Proposal(6, True)
    assert provider_proposal(9, 6, 60, 4, 2) == Proposal(6, True)  # served past it: unpaid


def test_an_end_below_what_is_settled_closes_at_the_settled_counter() -> None:
    assert provider_proposal(8, 2, 60, 4, 2) == Proposal(4, True)  # no receipt goes back


def test_the_provider_never_settles_more_than_it_delivered() -> None:
    with pytest.raises(BadMessage, match="more than the 5 served"):
        _settles(6, delivered=5)


def test_a_consumer_cannot_close_early_by_countersigning_final() -> None:
    with pytest.raises(BadMessage, match="before the agreement's end"):
        _settles(5, True)
    with pytest.raises(BadMessage, match="before the agreement's end"):
        _settles(5, True, end=6)
    assert _settles(6, True, end=6)


def test_a_repeated_countersign_is_settled_once_but_a_final_one_closes_at_the_same_counter(
) -> None:
    assert _settles(6, settled=3)
    assert not _settles(6, settled=6)
    assert not _settles(3, settled=6)
    assert _settles(6, True, end=6, settled=6)


# --- the consumer ---------------------------------------------------------------------------


def test_the_consumer_countersigns_what_it_received_and_waits_for_the_rest() -> None:
    assert _consumer(3, evidence=3)
    assert not _consumer(4, evidence=3)


def test_the_consumer_never_countersigns_a_counter_that_goes_backwards() -> None:
    with pytest.raises(BadMessage, match="receipt of 2 after 3 signed"):
        _consumer(2, signed=3)
    assert _consumer(3, signed=3)  # the same receipt again (its countersign was lost)


def test_the_final_receipt_may_repeat_the_last_countersigned_counter() -> None:
    assert _consumer(2, True, signed=2, end=2)
    with pytest.raises(BadMessage, match="after 2 signed"):
        _consumer(2, False, signed=2, signed_final=True)


def test_the_consumer_refuses_a_final_receipt_before_the_quantity_or_its_end() -> None:
    with pytest.raises(BadMessage, match="final receipt at 5 before the end"):
        _consumer(5, True)
    assert _consumer(QUANTITY, True)
    assert _consumer(5, True, end=5)


def test_the_consumer_refuses_units_past_its_end_the_quantity_or_its_budget() -> None:
    with pytest.raises(BadMessage, match="past the end at 4"):
        _consumer(5, end=4)
    with pytest.raises(BadMessage, match="beyond the 12 agreed"):
        _consumer(QUANTITY + 1, evidence=QUANTITY + 1)
    with pytest.raises(BadMessage, match="exceed the budget"):
        _consumer(6, budget=5 * PRICE)


# --- the unit logs after a kill -------------------------------------------------------------


def test_a_unit_logged_but_not_counted_before_a_kill_is_dropped_on_restart(
        tmp_path: Path) -> None:
    path = tmp_path / "received" / "4.jsonl"
    path.parent.mkdir()
    path.write_text("".join(f'{{"n": {n}}}\n' for n in (1, 2, 3)))
    trim_units(path, 2)
    assert path.read_text().splitlines() == ['{"n": 1}', '{"n": 2}']
    trim_units(path, 2)
    assert len(path.read_text().splitlines()) == 2
