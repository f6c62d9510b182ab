"""BIP39 recovery phrases (``smartchain.cli.mnemonics``): a phrase must restore the same
key in every version, and in any tool that follows BIP39 and SLIP-0010."""

from __future__ import annotations

import pytest
from mnemonic import Mnemonic

from smartchain.cli import mnemonics
from smartchain.crypto.address import to_bech32

ENGLISH = Mnemonic("english")
ABANDON = "abandon " * 11 + "about"  # BIP39's all-zero 128-bit entropy


def test_a_new_phrase_is_24_english_words_with_a_valid_checksum() -> None:
    phrases = {mnemonics.new_phrase() for _ in range(5)}
    assert len(phrases) == 5  # fresh entropy each time
    for phrase in phrases:
        words = phrase.split()
        assert len(words) == 24 and set(words) <= set(ENGLISH.wordlist)
        assert ENGLISH.check(phrase)


def test_a_phrase_gives_the_same_key_whatever_its_case_and_spacing() -> None:
    phrase = mnemonics.new_phrase()
    key = mnemonics.key_from_phrase(phrase)
    for variant in (phrase.upper(), "  " + phrase.replace(" ", " \n\t ") + "\n"):
        assert mnemonics.key_from_phrase(variant).seed == key.seed


def test_the_master_key_is_slip10_ed25519() -> None:
    # SLIP-0010 test vector 1 for ed25519, chain m
    key = mnemonics.slip10_master(bytes.fromhex("000102030405060708090a0b0c0d0e0f"))
    assert key.seed.hex() == "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7"
    assert key.public_key.hex() == \
        "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"


def test_the_abandon_about_phrase_restores_its_known_address() -> None:
    # BIP39: this phrase's seed (no passphrase) is 5eb00bbd...; its SLIP-0010 master key
    # and address are pinned here so no later change can lose a user's account
    assert Mnemonic.to_seed(ABANDON).hex().startswith("5eb00bbddcf069084889a8ab91555681")
    key = mnemonics.key_from_phrase(ABANDON)
    assert key.seed.hex() == "560f9f3c94558b6551928bb781cf6092c6b8800b4fc544af2c9444ed126d51aa"
    assert to_bech32(key.address) == "smart14xetj9vk5dd7ty4uy4k9hgctvgy4v85x80c0yz"


@pytest.mark.parametrize("phrase", [
    "abandon " * 11 + "abandon",  # the checksum word is wrong
    "abandon " * 11 + "smartchain",  # not a BIP39 word
    "abandon " * 5 + "about",  # too short
    "",
])
def test_a_bad_phrase_is_refused_without_being_quoted(phrase: str) -> None:
    with pytest.raises(ValueError, match="invalid recovery phrase") as info:
        mnemonics.key_from_phrase(phrase)
    assert "abandon" not in str(info.value)
