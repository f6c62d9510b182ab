"""Joining an existing network: the seeds to dial, the network's genesis, and a check that
each seed answers with that genesis before anything is written or started.

The P2P network id is the genesis hash (smartchain/daemon.py), and a seed that runs
another genesis says so in the first handshake message (``handshake.WrongNetwork``). So
``smart node init --genesis ... --seeds ...`` dials every seed once and refuses a genesis
that differs from theirs, a seed whose key is not the one in its address, and a seed that
cannot be reached; ``smart node start`` makes the same check and refuses to run on a
genesis its reachable seeds do not share (an unreachable seed there is only logged: the
network may be restarting).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from smartchain.crypto.keys import PrivateKey
from smartchain.p2p import handshake
from smartchain.p2p.framing import P2PError
from smartchain.p2p.messages import format_address, parse_address
from smartchain.state.genesis import Genesis, GenesisError

GENESIS_ROUTE = "/v1/genesis"
GENESIS_MAX_BYTES = 64 * 1024 * 1024  # a genesis with millions of accounts still fits
SEED_TIMEOUT_S = 5.0
log = logging.getLogger("smartchain.join")


class JoinError(ValueError):
    """A seed or genesis that would not join the network: the message says which and why."""


def parse_seeds(text: str | list[str]) -> list[str]:
    """``ID@HOST:PORT`` addresses from a comma-separated string (or a list of them),
    checked one by one; duplicates dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    seeds: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            key, host, port = parse_address(item)
        except ValueError as exc:
            raise JoinError(f"bad seed {item!r}: {exc}; a seed is the ID@HOST:PORT that "
                            f"`smart node show-id` prints on that node") from None
        address = format_address(key, host, port)
        if address not in seeds:
            seeds.append(address)
    return seeds


def load_genesis(source: str, timeout: float = 30.0) -> Genesis:
    """A genesis from a file, or from a URL: a node's API (``http://host:26657``: its
    ``/v1/genesis``) or a JSON document anywhere."""
    if source.startswith(("http://", "https://")):
        url = source
        if urllib.parse.urlsplit(source).path in ("", "/"):
            url = source.rstrip("/") + GENESIS_ROUTE
        raw = _fetch(url, timeout)
        where = url
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as exc:
            raise JoinError(f"cannot read genesis file {source}: {exc.strerror or exc}") \
                from None
        where = source
    try:
        doc = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JoinError(f"genesis from {where} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise JoinError(f"genesis from {where} is not a JSON object")
    try:
        return Genesis.from_json(doc)
    except GenesisError as exc:
        raise JoinError(f"genesis from {where}: {exc}") from None


def _fetch(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(GENESIS_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise JoinError(f"cannot fetch genesis from {url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JoinError(f"cannot fetch genesis from {url}: {reason}") from None
    if len(body) > GENESIS_MAX_BYTES:
        raise JoinError(f"genesis from {url} is over {GENESIS_MAX_BYTES} bytes")
    return body


@dataclass(frozen=True, slots=True)
class SeedCheck:
    """What one seed answered: ``ok``, or the error (``wrong_network``: it runs another
    genesis, whose hash is ``theirs``)."""

    seed: str
    ok: bool
    error: str = ""
    wrong_network: bool = False
    theirs: str = ""


async def check_seed(seed: str, network_id: str, timeout: float = SEED_TIMEOUT_S,
                     identity: PrivateKey | None = None) -> SeedCheck:
    """Dial ``seed`` and run the handshake as a throwaway identity: it must be reachable,
    hold the key of its address and run the network ``network_id``."""
    key, host, port = parse_address(seed)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return SeedCheck(seed, False, f"cannot reach {host}:{port}: {exc or 'timed out'}")
    try:
        await handshake.initiate(reader, writer, identity or PrivateKey.generate(),
                                 network_id, expected_peer=key, timeout=timeout)
        return SeedCheck(seed, True)
    except handshake.WrongNetwork as exc:
        return SeedCheck(seed, False, f"it runs genesis {exc.theirs}, not {network_id}",
                         wrong_network=True, theirs=exc.theirs)
    except P2PError as exc:
        return SeedCheck(seed, False, str(exc))
    finally:
        writer.transport.close()


async def check_seeds(seeds: list[str], network_id: str,
                      timeout: float = SEED_TIMEOUT_S) -> list[SeedCheck]:
    return list(await asyncio.gather(*(check_seed(s, network_id, timeout) for s in seeds)))


def refuse_wrong_network(checks: list[SeedCheck], genesis_hash: str) -> None:
    """Raise if any seed runs another genesis: joining with this one would start a node on
    a chain of its own."""
    wrong = [c for c in checks if c.wrong_network]
    if wrong:
        raise JoinError(
            f"genesis mismatch: our genesis hash is {genesis_hash}, but seed "
            f"{_short(wrong[0].seed)} runs genesis {wrong[0].theirs}"
            + (f" (and {len(wrong) - 1} more seeds)" if len(wrong) > 1 else "")
            + "; get the network's genesis with `smart genesis export --node URL`")


def require_all(checks: list[SeedCheck], genesis_hash: str) -> None:
    """For ``node init``: every seed must be reachable, be who its address says and run
    our genesis."""
    refuse_wrong_network(checks, genesis_hash)
    bad = [c for c in checks if not c.ok]
    if bad:
        raise JoinError("; ".join(f"seed {_short(c.seed)}: {c.error}" for c in bad)
                        + " (--skip-seed-check writes the home anyway)")


def _short(seed: str) -> str:
    key, _, rest = seed.partition("@")
    return f"{key[:16]}…@{rest}"
