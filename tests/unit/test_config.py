"""config.toml: one section per sub-system, parsed onto that sub-system's own config type;
unknown sections and keys, the old flat format and ungated faults are refused by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smartchain import devnet
from smartchain.consensus.engine import EngineConfig
from smartchain.node.config import (
    TEST_FAULTS_ENV,
    ConfigError,
    ConsensusSettings,
    FaultSettings,
    NodeConfig,
    P2PSettings,
    StorageSettings,
)
from smartchain.p2p import P2PConfig


def write(home: Path, text: str) -> Path:
    (home / "config.toml").write_text(text)
    return home


def test_sections_set_the_sub_systems_own_config_types(tmp_path: Path) -> None:
    cfg = NodeConfig.load(write(tmp_path, """
[node]
moniker = "alpha"
[api]
port = 0
[p2p]
port = 30001
seeds = ["ab@127.0.0.1:30002"]
pex = false
rate_frames = 50
[consensus]
block_time_ms = 200
timeout_prevote_ms = 300
[compute]
cores = 2
[storage]
capacity = 1024
dir = "pieces"
"""))
    assert cfg.moniker == "alpha" and cfg.api.port == 0
    assert cfg.p2p.port == 30001 and cfg.p2p.seeds == ["ab@127.0.0.1:30002"]
    assert cfg.p2p.transport == P2PConfig(pex=False, rate_frames=50.0)
    assert cfg.consensus.block_time_ms == 200
    assert cfg.consensus.engine == EngineConfig(timeout_prevote_ms=300)
    assert cfg.compute.cores == 2 and cfg.storage == StorageSettings(capacity=1024, dir="pieces")


def test_a_saved_config_loads_back_equal(tmp_path: Path) -> None:
    cfg = NodeConfig(moniker="beta",
                     p2p=P2PSettings(port=1, transport=P2PConfig(max_inbound=7,
                                                                 advertise_host="1.2.3.4")),
                     consensus=ConsensusSettings(engine=EngineConfig(timeout_propose_ms=9)))
    cfg.save(tmp_path)
    assert NodeConfig.load(tmp_path) == cfg
    text = (tmp_path / "config.toml").read_text()
    assert "[p2p]" in text and "max_inbound = 7" in text and "timeout_propose_ms = 9" in text


@pytest.mark.parametrize(("text", "message"), [
    ("[rpc]\nport = 1\n", r"unknown section \[rpc\]"),
    ("[api]\nprot = 1\n", r"unknown setting 'prot' in \[api\]"),
    ("[p2p]\ntransport = 1\n", r"unknown setting 'transport' in \[p2p\]"),
    ("[consensus]\nengine = 1\n", r"unknown setting 'engine' in \[consensus\]"),
    ("[node]\nfoo = 1\n", r"unknown setting 'foo' in \[node\]"),
    ("[api]\nport = \"80\"\n", r"\[api\] port must be int"),
    ("api = 3\n", r"api must be a \[section\]"),
])
def test_unknown_or_mistyped_settings_are_errors_naming_the_key(
        tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        NodeConfig.load(write(tmp_path, text))


def test_an_old_flat_config_names_the_section_each_key_moved_to(tmp_path: Path) -> None:
    flat = '[node]\nmoniker = "n"\napi_port = 26657\np2p_port = 26656\n'
    with pytest.raises(ConfigError, match=r"api_port .*old flat format.*\[api\] port.*"
                                          r"re-run `smart node init`"):
        NodeConfig.load(write(tmp_path, flat))
    with pytest.raises(ConfigError, match=r"provide_storage .*\[storage\] capacity"):
        NodeConfig.load(write(tmp_path, "[node]\nprovide_storage = 5\n"))


def test_the_faults_section_is_refused_outside_tests(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "[faults]\n")  # even an empty one: it has no place in a real node
    monkeypatch.delenv(TEST_FAULTS_ENV, raising=False)
    with pytest.raises(ConfigError, match=rf"\[faults\].*tests only.*{TEST_FAULTS_ENV}=1"):
        NodeConfig.load(tmp_path)
    monkeypatch.setenv(TEST_FAULTS_ENV, "1")
    write(tmp_path, "[faults]\nequivocate_every = 3\ncheat_compute = true\n")
    assert NodeConfig.load(tmp_path).faults == FaultSettings(3, True)
    assert "[faults]" not in NodeConfig().to_toml()


def test_out_of_range_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[p2p\] max_inbound_per_ip must be >= 1"):
        NodeConfig.load(write(tmp_path, "[p2p]\nmax_inbound_per_ip = 0\n"))
    with pytest.raises(ConfigError, match=r"\[p2p\] rate_frames and burst_frames"):
        NodeConfig.load(write(tmp_path, "[p2p]\nrate_frames = 0\n"))


def test_node_start_on_a_flat_config_says_what_to_do_and_exits_non_zero(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    init = [sys.executable, "-m", "smartchain.cli.main", "node"]
    subprocess.run([*init, "init", "--home", str(home), "--insecure"], check=True,
                   capture_output=True)
    write(home, '[node]\nmoniker = "n"\np2p_port = 26656\n')
    run = subprocess.run([*init, "start", "--home", str(home)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "p2p_port is a setting of the old flat format: it is now [p2p] port" in run.stderr
    assert not (home / "node.json").exists()


def test_a_devnet_with_an_old_flat_config_is_refused_before_any_node_starts(
        tmp_path: Path) -> None:
    doc = devnet.create(tmp_path, validators=2, accounts=1)
    write(Path(doc["nodes"][1]["home"]), '[node]\nmoniker = "node1"\nseeds = []\n')
    with pytest.raises(devnet.DevnetError, match=r"(?s)seeds .*\[p2p\] seeds.*remove "
                                                 rf"{tmp_path}.*smart devnet up"):
        devnet.start(doc)
    assert not any((Path(n["home"]) / "node.log").exists() for n in doc["nodes"])
