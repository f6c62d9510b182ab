"""Property tests of the canonical codec: round trip, injectivity, canonicality."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartchain.codec import (
    I64,
    U8,
    U16,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    CodecError,
    Fixed20,
    Fixed32,
    Fixed64,
    Str,
    Struct,
    decode,
    encode,
    list_of,
    optional,
)
from smartchain.crypto.merkle import MerkleProof
from smartchain.types.block import Block, BlockHeader
from smartchain.types.consensus import (
    EMPTY_COMMIT,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Vote,
)
from smartchain.types.tx import Attribute, Event, Receipt, Transaction

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- test structs ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inner(Struct):
    a: U16
    b: Str


@dataclass(frozen=True, slots=True)
class AllTypes(Struct):
    u8: U8
    u16: U16
    u32: U32
    u64: U64
    u128: U128
    i64: I64
    flag: Bool
    blob: Bytes
    text: Str
    f20: Fixed20
    f32: Fixed32
    f64: Fixed64
    nums: list_of[U32]
    inners: list_of[Inner]
    maybe: optional[U64]
    maybe_inner: optional[Inner]
    maybe_list: optional[list_of[Bytes]]
    inner: Inner


@dataclass(frozen=True, slots=True)
class TwoStrs(Struct):
    a: Str
    b: Str


@dataclass(frozen=True, slots=True)
class OneBool(Struct):
    v: Bool


@dataclass(frozen=True, slots=True)
class OneOpt(Struct):
    v: optional[U8]


@dataclass(frozen=True, slots=True)
class OneStr(Struct):
    v: Str


@dataclass(frozen=True, slots=True)
class OneList(Struct):
    v: list_of[U8]


@dataclass(frozen=True, slots=True)
class OneU8(Struct):
    v: U8


@dataclass(frozen=True, slots=True)
class OneU64(Struct):
    v: U64


@dataclass(frozen=True, slots=True)
class OneU128(Struct):
    v: U128


@dataclass(frozen=True, slots=True)
class OneI64(Struct):
    v: I64


@dataclass(frozen=True, slots=True)
class OneFixed20(Struct):
    v: Fixed20


# --- strategies -----------------------------------------------------------------------


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=(1 << bits) - 1)


def fixed(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


small_bytes = st.binary(max_size=40)
small_text = st.text(max_size=12)
inner_st = st.builds(Inner, uint(16), small_text)

all_types_st = st.builds(
    AllTypes,
    uint(8), uint(16), uint(32), uint(64), uint(128),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.booleans(), small_bytes, small_text, fixed(20), fixed(32), fixed(64),
    st.lists(uint(32), max_size=5).map(tuple),
    st.lists(inner_st, max_size=3).map(tuple),
    st.none() | uint(64),
    st.none() | inner_st,
    st.none() | st.lists(small_bytes, max_size=3).map(tuple),
    inner_st,
)

tx_st = st.builds(
    Transaction, small_text, fixed(32), uint(64), uint(64), uint(64), small_text,
    small_bytes, fixed(64),
)
header_st = st.builds(
    BlockHeader, small_text, uint(64), uint(64), fixed(32), fixed(32), fixed(32), fixed(32),
    fixed(32), fixed(32), fixed(32),
)
vote_st = st.builds(Vote, small_text, uint(64), uint(32), uint(8), fixed(32), fixed(32), fixed(64))
commit_st = st.builds(
    Commit, uint(64), uint(32), fixed(32),
    st.lists(st.builds(CommitSig, uint(32), fixed(64)), max_size=3).map(tuple),
)
evidence_st = st.builds(DuplicateVoteEvidence, vote_st, vote_st)
block_st = st.builds(
    Block, header_st, st.lists(small_bytes, max_size=4).map(tuple), commit_st,
    st.lists(evidence_st, max_size=2).map(tuple), fixed(64),
)
event_st = st.builds(
    Event, small_text, st.lists(st.builds(Attribute, small_text, small_text), max_size=3).map(tuple)
)
receipt_st = st.builds(
    Receipt, fixed(32), uint(32), uint(64), uint(128), small_text,
    st.lists(event_st, max_size=3).map(tuple),
)
proof_st = st.builds(MerkleProof, uint(64), uint(64), st.lists(fixed(32), max_size=6).map(tuple))

CASES = {
    "AllTypes": (AllTypes, all_types_st),
    "Transaction": (Transaction, tx_st),
    "BlockHeader": (BlockHeader, header_st),
    "Block": (Block, block_st),
    "Receipt": (Receipt, receipt_st),
    "MerkleProof": (MerkleProof, proof_st),
}
CASE_IDS = list(CASES)


# --- properties -----------------------------------------------------------------------


@pytest.mark.parametrize("name", CASE_IDS)
@FAST
@given(data=st.data())
def test_round_trip(name: str, data: st.DataObject) -> None:
    cls, strat = CASES[name]
    value = data.draw(strat)
    raw = encode(value)
    assert isinstance(raw, bytes)
    back = decode(cls, raw)
    assert back == value
    assert type(back) is cls
    assert back.encode() == raw


@pytest.mark.parametrize("name", CASE_IDS)
@FAST
@given(data=st.data())
def test_encode_injective(name: str, data: st.DataObject) -> None:
    _, strat = CASES[name]
    a = data.draw(strat)
    b = data.draw(strat)
    if encode(a) == encode(b):
        assert a == b
    else:
        assert a != b


@FAST
@given(a=all_types_st, data=st.data())
def test_encode_injective_single_field_change(a: AllTypes, data: st.DataObject) -> None:
    """Changing any one field of a value changes its encoding (and only equal fields collide)."""
    other = data.draw(all_types_st)
    field = data.draw(st.sampled_from(list(AllTypes.__dataclass_fields__)))
    b = replace(a, **{field: getattr(other, field)})
    assert (encode(a) == encode(b)) == (a == b)


def test_length_prefix_separates_adjacent_strings() -> None:
    values = [TwoStrs("ab", "c"), TwoStrs("a", "bc"), TwoStrs("", "abc"), TwoStrs("abc", "")]
    encodings = {v.encode() for v in values}
    assert len(encodings) == len(values)


@pytest.mark.parametrize("name", CASE_IDS)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_canonical_arbitrary_bytes(name: str, data: st.DataObject) -> None:
    cls, _ = CASES[name]
    raw = data.draw(st.binary(max_size=300))
    try:
        value = decode(cls, raw)
    except CodecError:
        return
    assert encode(value) == raw


@pytest.mark.parametrize("name", CASE_IDS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_canonical_mutated_encodings(name: str, data: st.DataObject) -> None:
    """Valid encodings with a byte changed, inserted or removed: reject, or re-encode exactly."""
    cls, strat = CASES[name]
    raw = bytearray(encode(data.draw(strat)))
    op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "extend"]))
    pos = data.draw(st.integers(min_value=0, max_value=len(raw)))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    if op == "flip" and pos < len(raw):
        raw[pos] = byte
    elif op == "insert":
        raw.insert(pos, byte)
    elif op == "delete" and pos < len(raw):
        del raw[pos]
    elif op == "truncate":
        del raw[pos:]
    elif op == "extend":
        raw.extend(data.draw(st.binary(min_size=1, max_size=8)))
    mutated = bytes(raw)
    try:
        value = decode(cls, mutated)
    except CodecError:
        return
    assert encode(value) == mutated


# --- explicit rejections --------------------------------------------------------------


@FAST
@given(value=all_types_st, extra=st.binary(min_size=1, max_size=5))
def test_trailing_bytes_rejected(value: AllTypes, extra: bytes) -> None:
    with pytest.raises(CodecError):
        decode(AllTypes, encode(value) + extra)


@FAST
@given(value=all_types_st, data=st.data())
def test_truncated_input_rejected(value: AllTypes, data: st.DataObject) -> None:
    raw = encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    with pytest.raises(CodecError):
        decode(AllTypes, raw[:cut])


def test_every_prefix_of_a_transaction_rejected() -> None:
    tx = Transaction("chain", bytes(range(32)), 1, 2, 3, "bank/transfer", b"xyz", bytes(64))
    raw = tx.encode()
    for cut in range(len(raw)):
        with pytest.raises(CodecError):
            Transaction.decode(raw[:cut])
    assert Transaction.decode(raw) == tx


def test_bool_byte_must_be_0_or_1() -> None:
    assert OneBool.decode(b"\x00") == OneBool(False)
    assert OneBool.decode(b"\x01") == OneBool(True)
    for b in (2, 3, 0x80, 0xFF):
        with pytest.raises(CodecError):
            OneBool.decode(bytes([b]))


def test_optional_tag_must_be_0_or_1() -> None:
    assert OneOpt.decode(b"\x00") == OneOpt(None)
    assert OneOpt.decode(b"\x01\x07") == OneOpt(7)
    with pytest.raises(CodecError):
        OneOpt.decode(b"\x02\x07")
    with pytest.raises(CodecError):
        OneOpt.decode(b"\x02")
    with pytest.raises(CodecError):
        OneOpt.decode(b"\x01")  # tag says present, value missing


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"a\x80b", b"\xe2\x82"])
def test_invalid_utf8_rejected(bad: bytes) -> None:
    raw = len(bad).to_bytes(4, "big") + bad
    with pytest.raises(CodecError):
        OneStr.decode(raw)


def test_valid_utf8_accepted() -> None:
    text = "héllo ✓ 😀"
    data = text.encode()
    assert OneStr.decode(len(data).to_bytes(4, "big") + data) == OneStr(text)


def test_length_prefix_beyond_input_rejected() -> None:
    with pytest.raises(CodecError):
        OneStr.decode((10).to_bytes(4, "big") + b"abc")
    with pytest.raises(CodecError):
        OneList.decode((0xFFFFFFFF).to_bytes(4, "big") + b"\x01\x02")


@pytest.mark.parametrize(
    ("cls", "value"),
    [
        (OneU8, 256),
        (OneU8, -1),
        (OneU64, 1 << 64),
        (OneU64, -1),
        (OneU128, 1 << 128),
        (OneU128, -1),
        (OneI64, 1 << 63),
        (OneI64, -(1 << 63) - 1),
        (OneU64, True),  # bool is not an int here
        (OneU64, 1.0),
        (OneU64, "1"),
    ],
)
def test_out_of_range_ints_rejected_on_encode(cls: type[Struct], value: object) -> None:
    with pytest.raises(CodecError):
        cls(value).encode()


@pytest.mark.parametrize(
    ("cls", "value"),
    [(OneU8, 255), (OneU8, 0), (OneU64, (1 << 64) - 1), (OneU128, (1 << 128) - 1),
     (OneI64, (1 << 63) - 1), (OneI64, -(1 << 63))],
)
def test_int_bounds_accepted(cls: type[Struct], value: int) -> None:
    assert cls.decode(cls(value).encode()) == cls(value)


def test_list_must_be_tuple() -> None:
    with pytest.raises(CodecError):
        OneList([1, 2, 3]).encode()
    assert OneList.decode(OneList((1, 2, 3)).encode()) == OneList((1, 2, 3))


def test_wrong_types_rejected_on_encode() -> None:
    with pytest.raises(CodecError):
        OneFixed20(bytes(19)).encode()
    with pytest.raises(CodecError):
        OneFixed20(bytearray(20)).encode()
    with pytest.raises(CodecError):
        OneBool(1).encode()
    with pytest.raises(CodecError):
        OneStr(b"bytes").encode()
    with pytest.raises(CodecError):
        Block("not a header", (), EMPTY_COMMIT, (), bytes(64)).encode()  # wrong nested type


def test_encoding_layout_is_big_endian_and_length_prefixed() -> None:
    """Pin the wire format: a change to it would fork every existing chain."""
    assert OneU64(1).encode() == b"\x00" * 7 + b"\x01"
    assert OneI64(-1).encode() == b"\xff" * 8
    assert OneStr("ab").encode() == b"\x00\x00\x00\x02ab"
    assert OneList((1, 2)).encode() == b"\x00\x00\x00\x02\x01\x02"
    assert OneOpt(None).encode() == b"\x00"
    assert OneOpt(5).encode() == b"\x01\x05"


def test_decode_accepts_bytearray_and_memoryview() -> None:
    raw = OneStr("x").encode()
    assert OneStr.decode(bytearray(raw)) == OneStr("x")
    assert OneStr.decode(memoryview(raw)) == OneStr("x")


@dataclass(frozen=True, slots=True)
class _Even(Struct):
    """A struct with its own check: decoding must still run it."""

    n: U32

    def __post_init__(self) -> None:
        if self.n % 2:
            raise ValueError("odd")


@dataclass(frozen=True)
class _Unslotted(Struct):
    a: U8
    b: Str


def test_decoding_runs_a_structs_own_post_init_check() -> None:
    assert _Even.decode(_Even(4).encode()) == _Even(4)
    with pytest.raises(CodecError, match="odd"):
        _Even.decode((3).to_bytes(4, "big"))


def test_decoded_structs_equal_and_hash_like_constructed_ones_slotted_or_not() -> None:
    for value in (_Unslotted(7, "x"), Transaction("c", bytes(32), 1, 2, 3, "k", b"p", bytes(64))):
        back = type(value).decode(value.encode())
        assert back == value and hash(back) == hash(value)
        assert back.encode() == value.encode()
