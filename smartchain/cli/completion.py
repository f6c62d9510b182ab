"""``smart --show-completion [SHELL]`` and ``--install-completion [SHELL]``: typer's
completion, with the shell given by name.

Typer's own two flags take no value and guess the shell from the parent process, so
``smart --show-completion bash`` printed a zsh script to a zsh user, and failed ("Shell sh
not supported") when run from ``sh``: a Dockerfile ``RUN``, cron, CI. Here a shell named
after the flag is the one used; without one, typer's guess as before.
"""

from __future__ import annotations

from typing import Annotated

import typer
import typer.completion as typer_completion

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")
GUESS = "auto"  # what a bare flag stands for: typer guesses the shell
FLAGS = ("--show-completion", "--install-completion")

typer_completion.completion_init()  # typer's script formats (add_completion=False skips it)


def _run(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    if value != GUESS and value not in SHELLS:
        raise typer.BadParameter(f"{value!r} is not a shell: name one of {', '.join(SHELLS)}")
    shell: str | bool = True if value == GUESS else value
    if param.name == "show_completion":
        typer_completion.show_callback(ctx, param, shell)  # prints, then exits 0
    else:
        typer_completion.install_callback(ctx, param, shell)


ShowCompletion = Annotated[str | None, typer.Option(
    "--show-completion", metavar="[SHELL]", callback=_run, is_eager=True,
    help=f"Print the completion script for SHELL ({', '.join(SHELLS)}; default: the "
    "current shell).")]
InstallCompletion = Annotated[str | None, typer.Option(
    "--install-completion", metavar="[SHELL]", callback=_run, is_eager=True,
    help="Install completion for SHELL (default: the current shell).")]


def with_guess(argv: list[str]) -> list[str]:
    """A bare completion flag (last, or before another option) given the value that means
    'guess' (click has no options with an optional value)."""
    out: list[str] = []
    for i, a in enumerate(argv):
        out.append(a)
        if a in FLAGS and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(GUESS)
    return out
