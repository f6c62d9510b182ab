"""The devices module on a real chain: manufacturers with deposits, certified devices that
prove their keys, owners transferring them, manufacturers revoking them for ever, and every
bad registration refused with nothing changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.devices.module import (
    check_device_signature,
    devices_of,
    get_device,
    get_manufacturer,
)
from smartchain.modules.devices.types import (
    MODULE_ACCOUNT,
    RegisterDevice,
    RegisterManufacturer,
    RevokeDevice,
    TransferDevice,
    sign_certificate,
    sign_pop,
)
from smartchain.state.params import Params
from smartchain.types.errors import Code, TxError

HPC = 10**8
DEPOSIT = 1_000 * HPC


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


MAKER, OTHER_MAKER, OWNER, BUYER, PROPOSER = key(40), key(41), key(42), key(43), key(44)
DEVICE, CLONE = key(45), key(46)
CAPS = ("weather.readings", "temperature")


def register_msg(device: PrivateKey = DEVICE, *, maker: PrivateKey = MAKER,
                 owner: PrivateKey = OWNER, serial: str = "WS-0001",
                 signer: PrivateKey | None = None, chain_id: str = "smart-test-1"
                 ) -> RegisterDevice:
    cert = sign_certificate(signer or maker, device.public_key, "WS-3", serial, CAPS)
    return RegisterDevice(device.public_key, maker.address, "WS-3", serial, CAPS, cert,
                          owner.address, sign_pop(device, chain_id, owner.address))


@pytest.fixture
def net(chainkit: Any) -> ChainNet:
    balances = {k: 10_000 * HPC for k in (MAKER, OTHER_MAKER, OWNER, BUYER)}
    return ChainNet(chainkit, chainkit.open(chainkit.genesis(balances, params=Params())),
                    PROPOSER)


def devices_state(net: ChainNet) -> dict[bytes, bytes]:
    return net.read(lambda view: dict(view.iter_prefix(b"devices/")))


def test_a_manufacturer_registers_with_a_deposit_held_by_the_module(net: ChainNet) -> None:
    net.ok(MAKER, RegisterManufacturer("Acme Weather", MAKER.public_key, DEPOSIT))
    mfr = net.read(get_manufacturer, MAKER.address)
    assert (mfr.name, mfr.deposit, mfr.devices) == ("Acme Weather", DEPOSIT, 0)
    assert net.read(get_account, MODULE_ACCOUNT).balance == DEPOSIT
    net.ok(MAKER, RegisterManufacturer("Acme Weather", MAKER.public_key, HPC))
    assert net.read(get_manufacturer, MAKER.address).deposit == DEPOSIT + HPC
    r = net.send(OTHER_MAKER, RegisterManufacturer("Cheap", OTHER_MAKER.public_key, HPC))
    assert r.code == Code.FAILED and "below the manufacturer deposit" in r.log
    r = net.send(OTHER_MAKER, RegisterManufacturer("Thief", MAKER.public_key, DEPOSIT))
    assert r.code == Code.FAILED and "sender's own key" in r.log
    assert net.read(get_manufacturer, OTHER_MAKER.address) is None


def test_a_certified_device_registers_under_its_owner_and_can_be_transferred(
        net: ChainNet) -> None:
    net.ok(MAKER, RegisterManufacturer("Acme", MAKER.public_key, DEPOSIT))
    net.ok(OWNER, register_msg())
    device = net.read(get_device, DEVICE.public_key)
    assert (device.owner, device.manufacturer, device.model, device.serial,
            device.capabilities, device.revoked) == (OWNER.address, MAKER.address, "WS-3",
                                                     "WS-0001", CAPS, False)
    assert [d.pubkey for d in net.read(devices_of, OWNER.address)] == [DEVICE.public_key]
    assert net.read(get_manufacturer, MAKER.address).devices == 1
    r = net.send(BUYER, TransferDevice(DEVICE.public_key, BUYER.address))
    assert r.code == Code.FAILED and "only the device's owner" in r.log
    net.ok(OWNER, TransferDevice(DEVICE.public_key, BUYER.address))
    assert net.read(get_device, DEVICE.public_key).owner == BUYER.address
    assert net.read(devices_of, OWNER.address) == []
    assert [d.pubkey for d in net.read(devices_of, BUYER.address)] == [DEVICE.public_key]


def test_bad_registrations_are_refused_and_change_nothing(net: ChainNet) -> None:
    net.ok(MAKER, RegisterManufacturer("Acme", MAKER.public_key, DEPOSIT))
    net.ok(OWNER, register_msg(serial="WS-0000", device=key(47)))
    good = register_msg()
    cases = [
        (OWNER, register_msg(signer=OTHER_MAKER), "certificate not signed"),
        (OWNER, register_msg(maker=OTHER_MAKER), "manufacturer"),  # not registered
        (OWNER, replace(good, serial="WS-9999"), "certificate not signed"),  # cert altered
        (OWNER, replace(good, pop=sign_pop(CLONE, "smart-test-1", OWNER.address)),
         "proof of possession"),
        (OWNER, register_msg(chain_id="other-chain"), "proof of possession"),
        (BUYER, good, "owner must be the sender"),
        (OWNER, register_msg(key(47), serial="WS-0001"), "already registered"),  # same key
        (OWNER, register_msg(CLONE, serial="WS-0000"), "another key (a clone?)"),
    ]
    before = devices_state(net)
    for sender, msg, why in cases:
        r = net.send(sender, msg)
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert devices_state(net) == before, why
    net.ok(OWNER, good)


def test_malformed_device_payloads_are_refused_before_the_mempool(net: ChainNet) -> None:
    for msg in (replace(register_msg(), capabilities=("Bad Cap",)),
                replace(register_msg(), model=""),
                replace(register_msg(), capabilities=CAPS + CAPS[:1])):
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, net.sign(OWNER, msg))
        assert err.value.code == Code.INVALID_PAYLOAD


def test_a_revoked_device_signs_nothing_the_chain_accepts_for_ever(net: ChainNet) -> None:
    net.ok(MAKER, RegisterManufacturer("Acme", MAKER.public_key, DEPOSIT))
    net.ok(OTHER_MAKER, RegisterManufacturer("Other", OTHER_MAKER.public_key, DEPOSIT))
    net.ok(OWNER, register_msg())
    message = b"reading 21.5C"
    assert net.read(check_device_signature, DEVICE.public_key, message,
                    DEVICE.sign(message)).owner == OWNER.address
    with pytest.raises(TxError, match="bad signature"):
        net.read(check_device_signature, DEVICE.public_key, message, CLONE.sign(message))
    for sender in (OWNER, OTHER_MAKER):
        r = net.send(sender, RevokeDevice(DEVICE.public_key))
        assert r.code == Code.FAILED and "only the device's manufacturer" in r.log
    net.ok(MAKER, RevokeDevice(DEVICE.public_key))
    assert net.read(get_device, DEVICE.public_key).revoked
    with pytest.raises(TxError, match="revoked"):
        net.read(check_device_signature, DEVICE.public_key, message, DEVICE.sign(message))
    r = net.send(OWNER, TransferDevice(DEVICE.public_key, BUYER.address))
    assert r.code == Code.FAILED and "revoked" in r.log
    r = net.send(OWNER, register_msg())  # nor can it come back under a fresh registration
    assert r.code == Code.FAILED and "already registered" in r.log
    with pytest.raises(TxError, match="not registered"):
        net.read(check_device_signature, CLONE.public_key, message, CLONE.sign(message))
