"""Joining a network, the parts without a socket: seed strings, genesis files and the verdict
on what the seeds answered (smartchain/node/join.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartchain.crypto.keys import PrivateKey
from smartchain.node.home import make_genesis
from smartchain.node.join import (
    JoinError,
    SeedCheck,
    load_genesis,
    parse_seeds,
    refuse_wrong_network,
    require_all,
)

KEY = "ab" * 32


def test_seeds_are_parsed_from_a_comma_separated_list_without_duplicates() -> None:
    seeds = parse_seeds(f" {KEY}@10.0.0.2:26656, {KEY}@10.0.0.2:26656,,{'cd' * 32}@[::1]:7 ")
    assert seeds == [f"{KEY}@10.0.0.2:26656", f"{'cd' * 32}@[::1]:7"]


@pytest.mark.parametrize("seed, why", [
    ("10.0.0.2:26656", "needs a public key"),
    (f"{KEY[:-2]}@10.0.0.2:26656", "64 hex characters"),
    (f"{'zz' * 32}@10.0.0.2:26656", "not hex"),
    (f"{KEY}@10.0.0.2", "host:port"),
    (f"{KEY}@10.0.0.2:70000", "port out of range"),
])
def test_a_seed_without_an_id_or_with_a_malformed_one_is_refused_by_name(seed: str,
                                                                         why: str) -> None:
    with pytest.raises(JoinError, match=why) as info:
        parse_seeds(f"{KEY}@10.0.0.1:1,{seed}")
    assert repr(seed) in str(info.value) and "show-id" in str(info.value)


def _genesis_file(tmp_path: Path) -> tuple[Path, str]:
    genesis = make_genesis("smart-join-1", [(PrivateKey.generate().public_key, 1, "v0")],
                           genesis_time_ms=1)
    path = tmp_path / "genesis.json"
    genesis.save(path)
    return path, genesis.hash().hex()


def test_a_genesis_file_loads_with_the_hash_of_the_chain_that_wrote_it(tmp_path: Path) -> None:
    path, digest = _genesis_file(tmp_path)
    assert load_genesis(str(path)).hash().hex() == digest


@pytest.mark.parametrize("text, why", [
    ("{not json", "is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ('{"chain_id": "x"}', "invalid genesis"),
])
def test_a_genesis_that_does_not_parse_is_refused_with_where_and_why(tmp_path: Path, text: str,
                                                                    why: str) -> None:
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(JoinError, match=why) as info:
        load_genesis(str(path))
    assert str(path) in str(info.value)


def test_a_missing_genesis_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JoinError, match="cannot read genesis file"):
        load_genesis(str(tmp_path / "nope.json"))


def test_a_genesis_with_a_changed_param_has_another_hash(tmp_path: Path) -> None:
    path, digest = _genesis_file(tmp_path)
    doc = json.loads(path.read_text())
    doc["params"]["block_time_ms"] += 1
    path.write_text(json.dumps(doc))
    assert load_genesis(str(path)).hash().hex() != digest


def test_a_seed_on_another_genesis_is_refused_naming_both_hashes() -> None:
    checks = [SeedCheck("a@h:1", True),
              SeedCheck(f"{KEY}@h:2", False, "x", wrong_network=True, theirs="f" * 64)]
    with pytest.raises(JoinError, match="genesis mismatch") as info:
        refuse_wrong_network(checks, "0" * 64)
    assert "0" * 64 in str(info.value) and "f" * 64 in str(info.value)


def test_unreachable_seeds_only_fail_init_not_the_wrong_network_check() -> None:
    checks = [SeedCheck(f"{KEY}@h:2", False, "cannot reach h:2")]
    refuse_wrong_network(checks, "0" * 64)  # a node restarting while its seed is down runs
    with pytest.raises(JoinError, match="cannot reach h:2"):
        require_all(checks, "0" * 64)
