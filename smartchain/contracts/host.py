"""The chain side of a running contract: every host call the sandbox makes lands here.

Arguments come from contract code, so each is checked (type, size, address syntax) and
each operation is priced here; the sandbox charges the returned cost. Contract-level
failures raise ``ContractError`` (the contract may catch them). The chain implements the
primitives (``_load``, ``_move_hpc``, ...) over its state; tests use a dict.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from smartchain.contracts.rewrite import SourceError, rewrite
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.types.tx import Attribute, Event

MAX_KEY = 128
MAX_VALUE = 16 * 1024
MAX_EVENT_BYTES = 4096
MAX_ADDRESS_TEXT = 100  # a bech32 address is shorter: longer text is refused before decoding
FUNCTION_NAME = re.compile(rb"[A-Za-z][A-Za-z0-9_]{0,63}")
_I64 = struct.Struct(">q")
_INT_TAG, _BYTES_TAG = b"\x01", b"\x02"
STORE_PREFIX = b"contracts/store/"  # + contract address + encoded key


class ContractError(Exception):
    """A contract-level failure the contract may catch (bad argument, insufficient funds)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class GasSchedule:
    """What the sandbox charges besides one gas per VM instruction."""

    call: int = 5_000
    read: int = 300
    write: int = 1_000
    byte: int = 10  # per byte of storage written or of event data
    event: int = 500
    transfer: int = 2_000
    coroutine: int = 500


@dataclass(slots=True)
class Frame:
    address: bytes  # 20 bytes
    checkpoint: int  # state journal position when the call began
    events: int  # events emitted before it


def is_int(v: object) -> bool:
    return type(v) is int  # not bool


def encode_key(key: Any) -> bytes:
    if type(key) is bytes:
        if len(key) > MAX_KEY:
            raise ContractError(f"storage key is longer than {MAX_KEY} bytes")
        return b"s" + key
    if is_int(key):
        return b"i" + _I64.pack(key)
    raise ContractError("a storage key must be a string or an integer")


def encode_value(value: Any) -> bytes:
    if type(value) is bytes:
        if len(value) > MAX_VALUE:
            raise ContractError(f"a storage value is at most {MAX_VALUE} bytes")
        return _BYTES_TAG + value
    if is_int(value):
        return _INT_TAG + _I64.pack(value)
    raise ContractError("a storage value must be a string or an integer (nil deletes)")


def check_function_name(name: Any) -> bytes:
    """Callable from outside: an identifier, not private (``_x``) and not ``init``."""
    if type(name) is not bytes or not FUNCTION_NAME.fullmatch(name) or name == b"init":
        raise ContractError(f"cannot call function {name!r}: not a public function name")
    return name


def _amount(v: Any) -> int:
    if not is_int(v) or v <= 0:
        raise ContractError("an amount must be a positive integer")
    return v


def _symbol(v: Any) -> str:
    if type(v) is not bytes or not 1 <= len(v) <= 10 or not v.isalnum():
        raise ContractError("a token symbol is 1 to 10 letters and digits")
    return v.decode()


def _text(v: Any) -> str:
    if v is None or type(v) is bool:
        return "true" if v else ("false" if v is False else "nil")
    if is_int(v):
        return str(v)
    if type(v) is bytes:
        return v.decode("utf-8", errors="replace")
    raise ContractError("an event value must be nil, a boolean, an integer or a string")


@dataclass(eq=False)
class Host:
    """Validation, pricing and the call stack; storage and money are the subclass's."""

    gas: GasSchedule = field(default_factory=GasSchedule)
    frames: list[Frame] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    _addresses: dict[bytes, bytes] = field(default_factory=dict)
    _prefix: bytes = b""  # where the running contract's storage lives

    # --- primitives the chain provides --------------------------------------------------

    def _load(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def _store(self, key: bytes, value: bytes | None) -> None:
        raise NotImplementedError

    def _checkpoint(self) -> int:
        raise NotImplementedError

    def _revert(self, checkpoint: int) -> None:
        raise NotImplementedError

    def _source(self, address: bytes) -> bytes | None:
        raise NotImplementedError

    def _balance(self, address: bytes) -> int:
        raise NotImplementedError

    def _move_hpc(self, frm: bytes, to: bytes, amount: int) -> None:
        raise NotImplementedError

    def _token_balance(self, symbol: str, address: bytes) -> int:
        raise NotImplementedError

    def _move_tokens(self, symbol: str, frm: bytes, to: bytes, amount: int) -> None:
        raise NotImplementedError

    def _spend_allowance(self, symbol: str, owner: bytes, spender: bytes, amount: int) -> None:
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------

    @property
    def current(self) -> bytes:
        return self.frames[-1].address

    def address(self, text: Any) -> bytes:
        raw = self._addresses.get(text) if type(text) is bytes else None
        if raw is None:
            if type(text) is not bytes:
                raise ContractError("an address must be a string")
            if len(text) > MAX_ADDRESS_TEXT:
                raise ContractError("invalid address: too long")
            try:
                raw = from_bech32(text.decode("ascii", errors="replace"))
            except AddressError as exc:
                raise ContractError(f"invalid address: {exc}") from exc
            self._addresses[text] = raw
        return raw

    def begin(self, contract: bytes) -> None:
        """Start a top-level call of ``contract`` (its checkpoint is the caller's)."""
        self.frames = [Frame(contract, self._checkpoint(), 0)]
        self.events = []
        self._prefix = STORE_PREFIX + contract

    # --- host calls (names match the sandbox's) ----------------------------------------

    def get(self, key: Any) -> tuple[Any, int]:
        """A read the sandbox's cache missed (the sandbox charges reads itself)."""
        raw = self._load(self._prefix + encode_key(key))
        if raw is None:
            return None, 0
        if raw[0] == _BYTES_TAG[0]:
            return raw[1:], 0
        return _I64.unpack_from(raw, 1)[0], 0

    def apply_writes(self, writes: Iterable[tuple[bytes, Any, Any]]) -> None:
        """Store a VM's drained writes: (contract address text, key, value or None)."""
        store = self._store
        for address, key, value in writes:
            prefix = STORE_PREFIX + self.address(address)
            store(prefix + encode_key(key), None if value is None else encode_value(value))

    def emit(self, name: Any, named: bool, *values: Any) -> tuple[None, int]:
        if type(name) is not bytes or not FUNCTION_NAME.fullmatch(name):
            raise ContractError("an event name is an identifier of at most 64 characters")
        # refused before any decoding: a refused host call costs the contract little gas
        if sum(len(v) for v in values if type(v) is bytes) > MAX_EVENT_BYTES:
            raise ContractError(f"an event is at most {MAX_EVENT_BYTES} bytes")
        attrs = [Attribute("contract", self.current.hex())]
        if named:
            for k, v in zip(values[::2], values[1::2], strict=True):
                attrs.append(Attribute(_text(k), _text(v)))
        else:
            attrs.extend(Attribute(str(i), _text(v)) for i, v in enumerate(values, 1))
        size = len(name) + sum(len(a.key) + len(a.value) for a in attrs)
        if size > MAX_EVENT_BYTES:
            raise ContractError(f"an event is at most {MAX_EVENT_BYTES} bytes")
        self.events.append(Event(f"contract/{name.decode()}", tuple(attrs)))
        return None, self.gas.event + self.gas.byte * size

    def balance(self, address: Any) -> tuple[int, int]:
        return self._balance(self.address(address)), self.gas.read

    def transfer(self, to: Any, amount: Any) -> tuple[None, int]:
        self._move_hpc(self.current, self.address(to), _amount(amount))
        return None, self.gas.transfer

    def token_balance(self, symbol: Any, address: Any) -> tuple[int, int]:
        return self._token_balance(_symbol(symbol), self.address(address)), self.gas.read

    def token_transfer(self, symbol: Any, to: Any, amount: Any) -> tuple[None, int]:
        self._move_tokens(_symbol(symbol), self.current, self.address(to), _amount(amount))
        return None, self.gas.transfer

    def token_transfer_from(self, symbol: Any, owner: Any, to: Any,
                            amount: Any) -> tuple[None, int]:
        sym, frm, amt = _symbol(symbol), self.address(owner), _amount(amount)
        self._spend_allowance(sym, frm, self.current, amt)
        self._move_tokens(sym, frm, self.address(to), amt)
        return None, self.gas.transfer

    def enter(self, address: Any, function: Any) -> tuple[None, int]:
        """A nested call: the callee must exist; its writes can be reverted alone."""
        contract = self.address(address)
        check_function_name(function)
        if self._source(contract) is None:
            raise ContractError(f"no contract at {to_bech32(contract)}")
        self.frames.append(Frame(contract, self._checkpoint(), len(self.events)))
        self._prefix = STORE_PREFIX + contract
        return None, self.gas.call

    def leave(self, ok: bool) -> None:
        frame = self.frames.pop()
        self._prefix = STORE_PREFIX + self.frames[-1].address
        if not ok:
            self._revert(frame.checkpoint)
            del self.events[frame.events:]

    def _executable(self, address: bytes) -> bytes | None:
        """The contract's source as the VM compiles it (``rewrite``). The chain keeps it
        from the deploy, so a call never pays for rewriting; other hosts rewrite here."""
        source = self._source(address)
        if source is None:
            return None
        try:
            return rewrite(source)
        except SourceError as exc:
            raise ContractError(f"stored contract does not compile: {exc}") from exc

    def code(self, address: Any) -> tuple[bytes, int]:
        executable = self._executable(self.address(address))
        if executable is None:
            raise ContractError("no contract at that address")
        return executable, len(executable)  # compiling: about one instruction per byte
