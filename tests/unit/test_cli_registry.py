"""The ``smart`` command takes each module's sub-commands from the app's module list."""

from __future__ import annotations

from typer.main import get_command

from smartchain.app import MODULES, module_clis
from smartchain.cli.main import app


def test_every_module_s_command_group_is_a_smart_command_with_its_own_commands() -> None:
    groups = get_command(app).commands  # type: ignore[attr-defined]
    for module_cli in module_clis():
        assert module_cli.name in groups
        assert set(groups[module_cli.name].commands) == set(
            get_command(module_cli.app).commands)  # type: ignore[attr-defined]


def test_the_modules_with_commands_are_listed_in_module_order() -> None:
    names = [m.cli.name for m in MODULES if m.cli is not None]
    assert names == ["token", "contract", "compute", "store", "validator", "device", "market",
                     "gov", "rewards"]
    assert [c.name for c in module_clis()][-5:] == ["stake", "device", "market", "gov",
                                                    "rewards"]
