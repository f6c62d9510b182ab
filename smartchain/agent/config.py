"""The agent's CONFIG.toml: one section per concern, each onto a dataclass.

    [agent]    name, node URL, key file (sealed), state directory, poll period
    [mqtt]     broker host and port, topic prefix
    [device]   the device whose signed messages this agent meters (provider side)
    [limits]   the owner's limits: price band, largest quantity, budget
    [[offer]]  services this agent provides (published on chain)
    [[quote]]  asks (provider) or bids (consumer) it keeps on the book within [limits]
    [compute]  sharing the device's idle compute through the compute module

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
class AgentConfig:
    path: Path
    agent: AgentSettings = field(default_factory=AgentSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    limits: Limits = field(default_factory=Limits)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
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
                              "compute": ComputeSettings}
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
        ok = isinstance(value, int | float) and not isinstance(value, bool) if want is float \
            else isinstance(value, want) and (want is bool or not isinstance(value, bool))
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
    return AgentConfig(path.resolve(), **kwargs)
