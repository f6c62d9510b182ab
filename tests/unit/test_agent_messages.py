"""What an agent accepts from MQTT: only messages whose device signature verifies."""

from __future__ import annotations

import pytest

from smartchain.agent.messages import BadMessage, open_message, sign_message
from smartchain.crypto.keys import PrivateKey

STATION = PrivateKey.from_seed(b"\x51" * 32)
OTHER = PrivateKey.from_seed(b"\x52" * 32)


def test_a_signed_reading_opens_to_the_device_its_number_and_its_body() -> None:
    msg = open_message(sign_message(STATION, "reading", 7, {"temperature_c10": 215}))
    assert (msg.device, msg.kind, msg.seq) == (STATION.public_key, "reading", 7)
    assert msg.data() == {"temperature_c10": 215}


def test_a_message_with_one_byte_changed_is_refused() -> None:
    raw = bytearray(sign_message(STATION, "reading", 1, {"t": 1}))
    raw[-2] ^= 1
    with pytest.raises(BadMessage, match="bad signature"):
        open_message(bytes(raw))


def test_a_message_signed_by_another_key_than_the_device_it_names_is_refused() -> None:
    forged = sign_message(OTHER, "reading", 1, {"t": 1})
    raw = forged[:64] + STATION.public_key + forged[96:]
    with pytest.raises(BadMessage, match="bad signature"):
        open_message(raw)


@pytest.mark.parametrize("raw", [b"", b"x" * 64, b"\x00" * 65, b"\xff" * 300])
def test_garbage_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(BadMessage):
        open_message(raw)
