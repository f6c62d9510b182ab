"""Gas is proportional to work: every function the sandbox exposes, called with adversarial
arguments (huge, negative, wrapped indices, long strings with equal prefixes, strings of
NULs), costs at least the work it does at the rates of docs/gas.md. CPU time per gas is
bench/gas.py's business (no timed assertion here)."""

from __future__ import annotations

import pytest
from framework.gas_cases import CASES, SETUP, Case
from test_sandbox import Sandbox


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox()


def _gas(box: Sandbox, body: str) -> tuple[bool, int, str]:
    out = box.run(SETUP + body, gas=100_000_000)
    return out.ok, out.gas_used, out.error


def test_every_exposed_function_has_an_adversarial_case(box: Sandbox) -> None:
    exposed = {n.decode() for n in box.vm.names()}
    assert exposed == {c.name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.name}: {c.stmt}")
def test_a_call_costs_at_least_the_work_it_does(box: Sandbox, case: Case) -> None:
    ok, base, error = _gas(box, "")
    assert ok, error
    ok, used, error = _gas(box, case.stmt)
    assert ok, error
    assert used - base >= case.work
