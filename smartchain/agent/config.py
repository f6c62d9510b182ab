"""The agent's CONFIG.toml: one section per concern, each onto a dataclass.

    [agent]    name, node URL, key file (sealed), state directory, poll period
    [mqtt]     broker host and port, topic prefix
    [device]   the device whose signed messages this agent meters (provider side)
    [limits]   the owner's limits: price band, largest quantity, budget
    [[offer]]  services this agent provides (published on chain)
    [[quote]]  asks (provider) or bids (consumer) it keeps on the book within [limits]
    [compute]  sharing the device's idle compute through the compute module
    [data]     the device's records kept as a data asset; keys delivered to buyers

Relative paths are relative to the config file. Unknown sections and keys are errors that
name them (a typo must not silently drop a limit).
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from smartchain.agent.compute import ComputeSettings


class ConfigError(ValueError):
    """The config file is missing, malformed, or names something unknown."""


@dataclass(frozen=True, slots=True)
class AgentSettings:
    name: str = "agent"  # also the MQTT client id: unique per agent on a broker
    node: str = "http://127.0.0.1:26657"
    key_file: str = "agent.key.json"  # the device key: signs receipts (sealed key file)
    account_key_file: str = ""  # the account that trades and pays; empty: key_file's own
    passphrase_file: str = ""  # else SMART_PASSPHRASE; not needed for an insecure key
    state_dir: str = "agent-state"
    poll_seconds: float = 0.5  # how often the chain is read


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    prefix: str = "smart"


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """The device whose signed messages this agent meters: its public key in hex, "self"
    for the agent's own key, or empty for none (a buyer with no device of its own)."""

    public_key: str = ""
    kind: str = "reading"  # messages of this kind are units of service
    final_kind: str = "leave"  # a message of this kind ends the service (parking)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the owner allows: quotes outside these are never placed."""

    min_price: int = 0  # an ask never goes below (base units per unit)
    max_price: int = 2**63 - 1  # a bid never goes above
    max_quantity: int = 2**63 - 1  # per quote
    budget: int = 2**63 - 1  # base units a consumer may commit in all, deposits included


@dataclass(frozen=True, slots=True)
class OfferSettings:
    service: str
    unit: str
    price: int
    token: str = "HPC"
    min_quantity: int = 1
    max_quantity: int = 1_000_000
    deposit_bps: int = 1000  # share of the agreement's value locked as deposit (1/10000)
    instalment_units: int = 10  # units per instalment
    deadline_blocks: int = 1000  # settle within this many blocks


@dataclass(frozen=True, slots=True)
class QuoteSettings:
    side: str  # "ask" (provider) or "bid" (consumer)
    service: str
    price: int  # limit price, base units per unit
    quantity: int
    token: str = "HPC"
    expires_blocks: int = 600  # placed again once it expired unfilled
    max_deposit_bps: int = 10_000  # a bid matches only offers asking at most this deposit


@dataclass(frozen=True, slots=True)
class DataSettings:
    """The device's signed records batched, stored and registered as a data asset
    (``collect``), and keys delivered for purchases under the owner's consent (``deliver``).
    docs/data.md "The owner's agent"."""

    collect: bool = False
    asset: str = ""  # the data asset's name (created with ``bond`` when absent)
    schema: str = ""  # e.g. "car.trips"
    region: str = ""  # a region tag buyers search by
    bond: int = 0  # base units of HPC locked with the asset; 0: the chain's data_asset_bond
    certificate: str = ""  # the device's manufacturer certificate, 64 bytes in hex
    kinds: list[str] = field(default_factory=list)  # record kinds kept (empty: every kind)
    time_field: str = "t_ms"  # body field with the record's time in ms (absent: arrival)
    batch_records: int = 256  # a batch closes at this many records,
    batch_span_ms: int = 0  # or before a record this much later than its first (0: never),
    batch_wait_seconds: float = 0.0  # or this long after its first record came (0: never)
    k: int = 2  # storage redundancy: any k of n columns rebuild a batch
    n: int = 3
    epochs: int = 30  # storage epochs paid for each batch file
    deliver: bool = False  # deliver keys of waiting purchases (the consent is the policy)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    path: Path
    agent: AgentSettings = field(default_factory=AgentSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    limits: Limits = field(default_factory=Limits)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    data: DataSettings = field(default_factory=DataSettings)
    offers: tuple[OfferSettings, ...] = ()
    quotes: tuple[QuoteSettings, ...] = ()

    def resolve(self, relative: str) -> Path:
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    @property
    def state_dir(self) -> Path:
        return self.resolve(self.agent.state_dir)


_SECTIONS: dict[str, type] = {"agent": AgentSettings, "mqtt": MqttSettings,
                              "device": DeviceSettings, "limits": Limits,
                              "compute": ComputeSettings, "data": DataSettings}
_LISTS: dict[str, tuple[str, type]] = {"offer": ("offers", OfferSettings),
                                       "quote": ("quotes", QuoteSettings)}


def _section(cls: type, name: str, doc: Any) -> Any:
    if not isinstance(doc, dict):
        raise ConfigError(f"[{name}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(known))})")
    for key, value in doc.items():
        want = hints[key]
        if typing.get_origin(want) is list:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif want is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if not ok:
            raise ConfigError(f"[{name}] {key} must be {want.__name__}, not {value!r}")
    try:
        return cls(**doc)
    except TypeError as exc:  # a required key missing
        raise ConfigError(f"[{name}]: {exc}") from None


def load_config(path: Path | str) -> AgentConfig:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no agent config at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    kwargs: dict[str, Any] = {}
    for name, value in doc.items():
        if name in _SECTIONS:
            kwargs[name] = _section(_SECTIONS[name], name, value)
        elif name in _LISTS:
            attr, cls = _LISTS[name]
            if not isinstance(value, list):
                raise ConfigError(f"write [[{name}]] (a list of tables), not [{name}]")
            kwargs[attr] = tuple(_section(cls, f"[{name}] #{i + 1}", v)
                                 for i, v in enumerate(value))
        else:
            known = sorted([*_SECTIONS, *_LISTS])
            raise ConfigError(f"unknown section [{name}] in {path} (known: {', '.join(known)})")
    for q in kwargs.get("quotes", ()):
        if q.side not in ("ask", "bid"):
            raise ConfigError(f"a [[quote]] side is 'ask' or 'bid', not {q.side!r}")
    if "data" in kwargs:
        _check_data(kwargs["data"], kwargs.get("device", DeviceSettings()))
    return AgentConfig(path.resolve(), **kwargs)


def _check_data(data: DataSettings, device: DeviceSettings) -> None:
    """What collecting needs: an asset, a schema, the certificate, a device whose key the
    agent holds (the device signs each batch's header), sane batch limits."""
    if not data.collect:
        return
    missing = [k for k in ("asset", "schema", "certificate") if not getattr(data, k)]
    if missing:
        raise ConfigError(f"[data] collect = true needs {', '.join(missing)}")
    if device.public_key != "self":
        raise ConfigError('[data] collect = true needs [device] public_key = "self": the '
                          "agent holds the device's key, which signs each batch's header")
    try:
        cert = bytes.fromhex(data.certificate)
    except ValueError:
        cert = b""
    if len(cert) != 64:
        raise ConfigError("[data] certificate must be 128 hex characters (64 bytes)")
    if data.batch_records < 1 or data.batch_span_ms < 0 or data.batch_wait_seconds < 0:
        raise ConfigError("[data] batch_records >= 1, batch_span_ms and batch_wait_seconds "
                          ">= 0")
    if not 1 <= data.k < data.n or data.epochs < 1:
        raise ConfigError("[data] needs 1 <= k < n and epochs >= 1")
