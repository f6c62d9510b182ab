"""The one canonical binary encoding for everything that is hashed, signed or stored.

A struct is a frozen dataclass whose fields are annotated with codec types (``U64``,
``Bytes``, ``Fixed32``, ``list_of[...]``, ``optional[...]``...).  Fields are encoded in
declaration order with no tags: integers fixed-width big-endian (so every integer has
exactly one encoding), bytes and strings with a u32 length prefix, lists with a u32
count, optionals with a 0/1 byte.  Decoding rejects anything ``encode`` could not have
produced: bad lengths, bools other than 0/1, invalid UTF-8 and trailing bytes.  Hence
``encode`` is injective and ``decode(encode(x)) == x``; the property tests in
``tests/unit/test_codec.py`` check both.

Each struct class gets a compiled encoder/decoder (closures built once per class) so the
transaction hot path does not interpret a schema per field.
"""

from __future__ import annotations

import dataclasses
import struct as _struct
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeAlias, TypeVar

__all__ = [
    "I64",
    "U8",
    "U16",
    "U32",
    "U64",
    "U128",
    "Bool",
    "Bytes",
    "CodecError",
    "Fixed16",
    "Fixed20",
    "Fixed32",
    "Fixed64",
    "Str",
    "Struct",
    "decode",
    "encode",
    "list_of",
    "optional",
]

MAX_LEN = 64 * 1024 * 1024  # no single length prefix may claim more than 64 MiB


class CodecError(ValueError):
    """Raised for any input that is not the canonical encoding of the expected type."""


Encoder = Callable[[Any, list[bytes]], None]
Buffer: TypeAlias = bytes | memoryview  # what decoders read: bytes as given, else a view
Decoder = Callable[[Buffer, int], tuple[Any, int]]


class Kind:
    """A codec type: how one field is written and read.

    ``fixed`` describes fixed-width kinds for the struct compiler: a ``struct`` format, a
    type check and conversions in and out, so runs of such fields pack in one call.
    """

    def __init__(self, name: str, enc: Encoder, dec: Decoder, py: type,
                 fixed: Fixed | None = None, inline_read: str = "") -> None:
        self.name = name
        self.enc = enc
        self.dec = dec
        self.py = py
        self.fixed = fixed
        self.inline_read = inline_read  # "bytes"/"str": length-prefixed, decoded inline

    def __repr__(self) -> str:
        return f"Kind({self.name})"


@dataclasses.dataclass(frozen=True)
class Fixed:
    fmt: str  # struct format of the field
    check: str  # expression over {x} that is True when {x} is encodable
    to_wire: str = "{x}"  # expression giving the struct argument
    from_wire: str = "{x}"  # expression turning the unpacked value into the field value
    valid: str = ""  # expression over the unpacked {x} that must hold (canonical input)


def _uint(bits: int) -> Kind:
    size = bits // 8
    limit = 1 << bits
    fmt = {8: ">B", 16: ">H", 32: ">I", 64: ">Q"}.get(bits)

    if fmt is not None:
        packer = _struct.Struct(fmt)
        pack, unpack_from = packer.pack, packer.unpack_from

        def enc(v: Any, out: list[bytes]) -> None:
            if type(v) is not int or not 0 <= v < limit:
                raise CodecError(f"u{bits} out of range or not an int: {v!r}")
            out.append(pack(v))

        def dec(buf: Buffer, pos: int) -> tuple[int, int]:
            end = pos + size
            if end > len(buf):
                raise CodecError(f"truncated u{bits}")
            return unpack_from(buf, pos)[0], end

    else:

        def enc(v: Any, out: list[bytes]) -> None:
            if type(v) is not int or not 0 <= v < limit:
                raise CodecError(f"u{bits} out of range or not an int: {v!r}")
            out.append(v.to_bytes(size, "big"))

        def dec(buf: Buffer, pos: int) -> tuple[int, int]:
            end = pos + size
            if end > len(buf):
                raise CodecError(f"truncated u{bits}")
            return int.from_bytes(buf[pos:end], "big"), end

    if fmt is not None:
        spec = Fixed(fmt[1:], "type({x}) is int")
    else:
        spec = Fixed(f"{size}s", "type({x}) is int and 0 <= {x} < " + str(limit),
                     "{x}.to_bytes(" + str(size) + ", 'big')", "int.from_bytes({x}, 'big')")
    return Kind(f"u{bits}", enc, dec, int, spec)


def _i64() -> Kind:
    packer = _struct.Struct(">q")

    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not int or not -(1 << 63) <= v < (1 << 63):
            raise CodecError(f"i64 out of range or not an int: {v!r}")
        out.append(packer.pack(v))

    def dec(buf: Buffer, pos: int) -> tuple[int, int]:
        if pos + 8 > len(buf):
            raise CodecError("truncated i64")
        return packer.unpack_from(buf, pos)[0], pos + 8

    return Kind("i64", enc, dec, int, Fixed("q", "type({x}) is int"))


def _bool() -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not bool:
            raise CodecError(f"bool expected: {v!r}")
        out.append(b"\x01" if v else b"\x00")

    def dec(buf: Buffer, pos: int) -> tuple[bool, int]:
        if pos >= len(buf):
            raise CodecError("truncated bool")
        b = buf[pos]
        if b > 1:
            raise CodecError("bool must be 0 or 1")
        return b == 1, pos + 1

    return Kind("bool", enc, dec, bool,
                Fixed("B", "type({x}) is bool", "int({x})", "{x} == 1", "{x} <= 1"))


_LEN = _struct.Struct(">I")


def _read_len(buf: Buffer, pos: int) -> tuple[int, int]:
    if pos + 4 > len(buf):
        raise CodecError("truncated length prefix")
    n = _LEN.unpack_from(buf, pos)[0]
    if n > MAX_LEN:
        raise CodecError("length prefix too large")
    return n, pos + 4


def _bytes() -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not bytes:
            raise CodecError(f"bytes expected: {type(v).__name__}")
        if len(v) > MAX_LEN:
            raise CodecError("bytes too long")
        out.append(_LEN.pack(len(v)))
        out.append(v)

    def dec(buf: Buffer, pos: int) -> tuple[bytes, int]:
        n, pos = _read_len(buf, pos)
        end = pos + n
        if end > len(buf):
            raise CodecError("truncated bytes")
        return bytes(buf[pos:end]), end

    return Kind("bytes", enc, dec, bytes, inline_read="bytes")


def _fixed(size: int) -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not bytes or len(v) != size:
            raise CodecError(f"exactly {size} bytes expected")
        out.append(v)

    def dec(buf: Buffer, pos: int) -> tuple[bytes, int]:
        end = pos + size
        if end > len(buf):
            raise CodecError(f"truncated bytes{size}")
        return bytes(buf[pos:end]), end

    return Kind(f"bytes{size}", enc, dec, bytes,
                Fixed(f"{size}s", "type({x}) is bytes and len({x}) == " + str(size)))


def _str() -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not str:
            raise CodecError(f"str expected: {type(v).__name__}")
        data = v.encode("utf-8")
        if len(data) > MAX_LEN:
            raise CodecError("str too long")
        out.append(_LEN.pack(len(data)))
        out.append(data)

    def dec(buf: Buffer, pos: int) -> tuple[str, int]:
        n, pos = _read_len(buf, pos)
        end = pos + n
        if end > len(buf):
            raise CodecError("truncated str")
        try:
            return str(buf[pos:end], "utf-8"), end
        except UnicodeDecodeError as exc:
            raise CodecError("invalid utf-8") from exc

    return Kind("str", enc, dec, str, inline_read="str")


_KINDS: dict[str, Kind] = {}


def _kind_list(item: Kind) -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not tuple:
            raise CodecError("list fields hold tuples (immutable)")
        out.append(_LEN.pack(len(v)))
        for x in v:
            item.enc(x, out)

    def dec(buf: Buffer, pos: int) -> tuple[tuple[Any, ...], int]:
        n, pos = _read_len(buf, pos)
        if n > len(buf) - pos:  # every item takes at least one byte: reject absurd counts early
            raise CodecError("list count exceeds remaining input")
        items = []
        for _ in range(n):
            x, pos = item.dec(buf, pos)
            items.append(x)
        return tuple(items), pos

    return Kind(f"list[{item.name}]", enc, dec, tuple)


def _kind_optional(item: Kind) -> Kind:
    def enc(v: Any, out: list[bytes]) -> None:
        if v is None:
            out.append(b"\x00")
        else:
            out.append(b"\x01")
            item.enc(v, out)

    def dec(buf: Buffer, pos: int) -> tuple[Any, int]:
        if pos >= len(buf):
            raise CodecError("truncated optional tag")
        tag = buf[pos]
        if tag == 0:
            return None, pos + 1
        if tag != 1:
            raise CodecError("optional tag must be 0 or 1")
        return item.dec(buf, pos + 1)

    return Kind(f"optional[{item.name}]", enc, dec, object)


U8 = Annotated[int, _uint(8)]
U16 = Annotated[int, _uint(16)]
U32 = Annotated[int, _uint(32)]
U64 = Annotated[int, _uint(64)]
U128 = Annotated[int, _uint(128)]
I64 = Annotated[int, _i64()]
Bool = Annotated[bool, _bool()]
Bytes = Annotated[bytes, _bytes()]
Str = Annotated[str, _str()]
Fixed16 = Annotated[bytes, _fixed(16)]
Fixed20 = Annotated[bytes, _fixed(20)]
Fixed32 = Annotated[bytes, _fixed(32)]
Fixed64 = Annotated[bytes, _fixed(64)]


class _ListOf:
    """``list_of[item]``: a tuple of ``item`` values, e.g. ``list_of[Fixed32]``."""

    def __getitem__(self, item: Any) -> Any:
        return Annotated[tuple, _kind_list(_kind_of(item))]


class _Optional:
    """``optional[item]``: an ``item`` value or ``None``."""

    def __getitem__(self, item: Any) -> Any:
        return Annotated[object, _kind_optional(_kind_of(item))]


_Item = TypeVar("_Item")

if TYPE_CHECKING:  # what the checker sees: the Python type a field actually holds
    list_of: TypeAlias = tuple[_Item, ...]
    optional: TypeAlias = _Item | None
else:  # at run time the same subscripts carry the field's codec
    list_of = _ListOf()
    optional = _Optional()


def _kind_of(tp: Any) -> Kind:
    if typing.get_origin(tp) is Annotated:
        for meta in tp.__metadata__:
            if isinstance(meta, Kind):
                return meta
    if isinstance(tp, type) and issubclass(tp, Struct):
        return tp._kind()
    raise TypeError(f"not a codec type: {tp!r}")


T = TypeVar("T", bound="Struct")
# Each struct class's compiled encoder and decoder (Struct._kind), by exact class: a lookup
# cheaper than the class's own __dict__, and a subclass never finds its parent's.
_ENCODERS: dict[type, Encoder] = {}
_DECODERS: dict[type, Decoder] = {}


class Struct:
    """Base for frozen dataclasses with a canonical encoding.

    Subclasses are declared ``@dataclass(frozen=True, slots=True)`` and annotate every
    field with a codec type.  ``encode()`` / ``decode()`` are compiled on first use.
    """

    __codec_kind__: ClassVar[Kind | None] = None

    @classmethod
    def _kind(cls) -> Kind:
        kind = cls.__dict__.get("__codec_kind__")
        if kind is None:
            kind = _compile(cls)
            cls.__codec_kind__ = kind
            _ENCODERS[cls] = kind.enc
            _DECODERS[cls] = kind.dec
        return kind

    def encode(self) -> bytes:
        enc = _ENCODERS.get(type(self)) or type(self)._kind().enc
        out: list[bytes] = []
        enc(self, out)
        return b"".join(out)

    @classmethod
    def decode(cls: type[T], data: bytes | bytearray | memoryview) -> T:
        # Decoders read bytes as they read a memoryview, and slicing bytes copies no more
        # than bytes(view[a:b]) does: no view to make and release on the hot path.
        buf = data if type(data) is bytes else memoryview(data)
        dec = _DECODERS.get(cls) or cls._kind().dec
        value: T
        try:
            value, pos = dec(buf, 0)
        except CodecError:
            raise
        except (ValueError, TypeError, IndexError) as exc:  # a field's own validation
            raise CodecError(f"invalid {cls.__name__}: {exc}") from exc
        if pos != len(buf):
            raise CodecError(f"{len(buf) - pos} trailing bytes after {cls.__name__}")
        return value


def _inline_read(kind: Kind, i: int, name: str, owner: str) -> list[str]:
    """Decoder lines for field ``i``: inline for bytes/str (the hot path), else a call."""
    if not kind.inline_read:
        return [f"    f{i}, pos = d{i}(buf, pos)"]
    convert = "bytes(buf[pos:end])" if kind.inline_read == "bytes" else "str(buf[pos:end], 'utf-8')"
    return [
        "    if pos + 4 > n:",
        f"        raise CodecError('truncated {owner}.{name}')",
        "    end = pos + 4 + ulen(buf, pos)[0]",
        "    pos += 4",
        "    if end > n or end - pos > MAX_LEN:",
        f"        raise CodecError('truncated {owner}.{name}')",
        f"    f{i} = {convert}",
        "    pos = end",
    ]


def _slot_setters(cls: type, names: list[str]) -> list[Callable[[Any, Any], None]] | None:
    """The slot setters that build ``cls`` as its generated ``__init__`` would: for a slotted
    dataclass whose fields are all ``__init__`` arguments and with no ``__post_init__``; else
    ``None`` (the decoder calls ``cls``)."""
    if hasattr(cls, "__post_init__") or not all(f.init for f in dataclasses.fields(cls)):
        return None
    slots = [cls.__dict__.get(name) for name in names]
    if not all(isinstance(slot, types.MemberDescriptorType) for slot in slots):
        return None
    return [slot.__set__ for slot in slots]  # type: ignore[union-attr]


def _compile(cls: type) -> Kind:
    """Build the struct's encoder/decoder as generated Python (one closure per class).

    Consecutive fixed-width fields are packed/unpacked with a single ``struct`` call; the
    generic per-field path stays as the slow path that produces precise error messages.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    names = [f.name for f in dataclasses.fields(cls)]
    kinds = [_kind_of(hints[n]) for n in names]
    pairs = list(zip(names, [k.enc for k in kinds], strict=True))

    def slow_enc(v: Any, out: list[bytes]) -> None:
        if type(v) is not cls:
            raise CodecError(f"{cls.__name__} expected, got {type(v).__name__}")
        for name, e in pairs:
            e(getattr(v, name), out)

    env: dict[str, Any] = {"cls": cls, "CodecError": CodecError, "slow_enc": slow_enc,
                           "StructError": _struct.error, "ulen": _LEN.unpack_from,
                           "MAX_LEN": MAX_LEN}
    enc_lines = ["def enc(v, out):", "    if type(v) is not cls:",
                 "        return slow_enc(v, out)"]
    dec_lines = ["def dec(buf, pos):", "    n = len(buf)"]
    for i, name in enumerate(names):
        enc_lines.append(f"    f{i} = v.{name}")
    checks: list[str] = []
    enc_body: list[str] = []
    i = 0
    while i < len(kinds):
        if kinds[i].fixed is None:
            env[f"e{i}"], env[f"d{i}"] = kinds[i].enc, kinds[i].dec
            enc_body.append(f"    e{i}(f{i}, out)")
            dec_lines += _inline_read(kinds[i], i, names[i], cls.__name__)
            i += 1
            continue
        j = i
        while j < len(kinds) and kinds[j].fixed is not None:
            j += 1
        run = range(i, j)
        specs = [(k, fx) for k in run if (fx := kinds[k].fixed) is not None]  # all of the run
        packer = _struct.Struct(">" + "".join(fx.fmt for _, fx in specs))
        env[f"p{i}"], env[f"u{i}"] = packer.pack, packer.unpack_from
        for k, fx in specs:
            checks.append(fx.check.format(x=f"f{k}"))
        args = ", ".join(fx.to_wire.format(x=f"f{k}") for k, fx in specs)
        enc_body.append(f"    out.append(p{i}({args}))")
        targets = "".join(f"f{k}, " for k in run)
        dec_lines += [
            f"    if pos + {packer.size} > n:",
            f"        raise CodecError('truncated {cls.__name__}')",
            f"    {targets}= u{i}(buf, pos)",
            f"    pos += {packer.size}",
        ]
        for k, fx in specs:
            if fx.valid:
                dec_lines += [f"    if not ({fx.valid.format(x=f'f{k}')}):",
                              f"        raise CodecError('non-canonical {names[k]}')"]
            if fx.from_wire != "{x}":
                dec_lines.append(f"    f{k} = {fx.from_wire.format(x=f'f{k}')}")
        i = j
    if checks:
        enc_lines += ["    if not (" + " and ".join(checks) + "):",
                      "        return slow_enc(v, out)"]
    if enc_body:  # a struct without fields encodes to nothing
        enc_lines += ["    try:"] + ["    " + line for line in enc_body] + [
            "    except StructError:", "        return slow_enc(v, out)"]
    setters = _slot_setters(cls, names)
    if setters is None:
        args = ", ".join(f"f{k}" for k in range(len(names)))
        dec_lines.append(f"    return cls({args}), pos")
    else:  # what the dataclass __init__ does, without its object.__setattr__ per field
        env["new"] = object.__new__
        dec_lines.append("    o = new(cls)")
        for k, setter in enumerate(setters):
            env[f"s{k}"] = setter
            dec_lines.append(f"    s{k}(o, f{k})")
        dec_lines.append("    return o, pos")
    exec("\n".join(enc_lines) + "\n\n" + "\n".join(dec_lines), env)
    return Kind(cls.__name__, env["enc"], env["dec"], cls)


def encode(value: Struct) -> bytes:
    """Canonical bytes of ``value``."""
    return value.encode()


def decode(cls: type[T], data: bytes | bytearray | memoryview) -> T:
    """Parse ``data`` as exactly one canonical ``cls``; raise ``CodecError`` otherwise."""
    return cls.decode(data)
