"""The agent reads agreements as the market module serves them, and takes as its own only
those that name both its account and its key."""

from __future__ import annotations

from smartchain.agent.chain import AgreementView
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.market.queries import agreement_json
from smartchain.modules.market.types import OPEN, SETTLED, Agreement, Terms

SELLER, BUYER = PrivateKey.from_seed(b"\x81" * 32), PrivateKey.from_seed(b"\x82" * 32)
STATION, CAR = PrivateKey.from_seed(b"\x83" * 32), PrivateKey.from_seed(b"\x84" * 32)


def _agreement(status: int = OPEN) -> Agreement:
    return Agreement(7, 2, 3, 1, "parking.minutes", "minute", "PARK", SELLER.address,
                     BUYER.address, STATION.public_key, CAR.public_key, 60, 1_000,
                     Terms(1_000, 2, 100_000), 6_000, 4, 2, 11, 100_011, 15, status, 2_000, 0)


def test_an_agreement_reads_from_the_json_the_market_serves() -> None:
    a = AgreementView.from_json(agreement_json(_agreement()))
    assert a == AgreementView(7, 2, "parking.minutes", "PARK", to_bech32(SELLER.address),
                              to_bech32(BUYER.address), STATION.public_key, CAR.public_key,
                              60, 1_000, 2, 2, "open")
    assert a.open
    assert not AgreementView.from_json(agreement_json(_agreement(SETTLED))).open


def test_an_agent_owns_an_agreement_only_when_it_names_its_account_and_its_key() -> None:
    a = AgreementView.from_json(agreement_json(_agreement()))
    seller, buyer = to_bech32(SELLER.address), to_bech32(BUYER.address)
    assert a.names("provider", seller, STATION.public_key)
    assert a.names("consumer", buyer, CAR.public_key)
    assert not a.names("provider", seller, SELLER.public_key)  # another agent of the seller
    assert not a.names("consumer", seller, CAR.public_key)
    assert not a.names("provider", buyer, CAR.public_key)
