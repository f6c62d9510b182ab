"""The agent's CONFIG.toml: a typo is an error that names it, never a silently dropped limit;
and its progress file survives a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartchain.agent.config import ConfigError, load_config
from smartchain.agent.store import Progress


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_a_full_config_loads_with_paths_relative_to_its_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, """
[agent]
name = "buyer"
state_dir = "state"
[limits]
max_price = 500
budget = 100000
[[quote]]
side = "bid"
service = "weather.readings"
price = 400
quantity = 20
"""))
    assert cfg.agent.name == "buyer" and cfg.state_dir == tmp_path / "state"
    assert cfg.limits.max_price == 500 and cfg.quotes[0].quantity == 20


@pytest.mark.parametrize(("text", "error"), [
    ("[limits]\nbudjet = 5\n", "unknown key(s) in [limits]: budjet"),
    ("[limit]\nbudget = 5\n", "unknown section [limit]"),
    ("[limits]\nbudget = '5'\n", "budget must be int"),
    ("[[quote]]\nside = 'buy'\nservice = 'x'\nprice = 1\nquantity = 1\n", "'ask' or 'bid'"),
    ("[[quote]]\nside = 'bid'\n", "missing"),
    ("[agent\n", "not valid TOML"),
])
def test_a_config_mistake_is_an_error_that_names_it(tmp_path: Path, text: str,
                                                    error: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_config(_write(tmp_path, text))
    assert error in str(info.value)


def test_progress_written_is_what_a_restarted_agent_reads(tmp_path: Path) -> None:
    Progress(tmp_path).update("agreements", "7", countersigned=12)
    assert Progress(tmp_path).entry("agreements", "7") == {"countersigned": 12}
