"""What every group of ``smart`` commands shares: global options, output, errors, keys.

Kept apart from ``main`` so feature command groups (``smart token``, ...) live in their own
modules without importing the entry point (which imports them).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from smartchain.cli import keyring, settings
from smartchain.client import Client
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.keystore import is_encrypted, open_doc
from smartchain.jsoncontract import EXIT_ERROR, EXIT_TX_FAILED
from smartchain.types.amount import format_hpc

out = Console(soft_wrap=True)  # never re-wrap lines: output is often piped or parsed
err = Console(stderr=True, soft_wrap=True)


class CliError(Exception):
    """A user-facing failure: message, a code of ``jsoncontract.ERROR_CODES``, exit code
    and (in the --json error document) details."""

    def __init__(self, message: str, code: str = "usage", exit_code: int = EXIT_ERROR,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code
        self.details = details or {}


@dataclass
class Opts:
    node: str | None = None
    json: bool = False

    @property
    def client(self) -> Client:
        return Client(self.node or settings.default_node())


OPTS = Opts()


def emit(data: dict[str, Any] | str, human: Any = None) -> None:
    """Print ``data`` as JSON with --json, else the human rendering (or data). A JSON
    document is always an object (docs/api.md): a list is wrapped by its command."""
    if isinstance(data, list):
        raise TypeError("emit a list wrapped in an object, e.g. {\"keys\": [...]}")
    if OPTS.json or (human is None and isinstance(data, dict | list)):
        print(json.dumps(data, indent=2))  # no rendering of its own: JSON, not a Python repr
    elif callable(human):
        human()
    else:
        out.print(human if human is not None else data)


def passphrase(prompt: str, confirm: bool = False, file: Path | None = None) -> str:
    """A passphrase from the file, SMART_PASSPHRASE or the terminal. ``confirm``: a new
    one (asked twice at a terminal), and a weak one is warned about on stderr."""
    pw = _read_passphrase(prompt, confirm, file)
    if confirm and pw:
        warning = weak_passphrase(pw)
        if warning:
            err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False)
    return pw


def _read_passphrase(prompt: str, confirm: bool, file: Path | None) -> str:
    if file is not None:
        try:
            return file.read_text().rstrip("\n")
        except OSError as exc:
            raise CliError(f"cannot read passphrase file: {exc}") from exc
    env = os.environ.get("SMART_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise CliError("a passphrase is needed: set SMART_PASSPHRASE or use --passphrase-file")
    pw = getpass.getpass(prompt)
    if confirm and getpass.getpass("Repeat passphrase: ") != pw:
        raise CliError("passphrases do not match")
    return pw


def weak_passphrase(pw: str) -> str | None:
    """Why ``pw`` is easy to guess (zxcvbn scores it below 3 of 4), or None. Whoever copies
    a key file may try passphrases offline for as long as they like: Argon2id slows each
    try, but cannot save a common password."""
    from zxcvbn import zxcvbn  # its dictionaries load in ~30 ms: only when a key is sealed

    result = zxcvbn(pw[:256])  # its cost grows with length; 256 characters is plenty
    if result["score"] >= 3:
        return None
    advice = " ".join([result["feedback"]["warning"], *result["feedback"]["suggestions"]])
    return (f"weak passphrase (strength {result['score']} of 4): anyone with the key file "
            f"can guess it offline. {advice}".strip())


def load_key(name: str, passphrase_file: Path | None = None) -> PrivateKey:
    doc = keyring.read_doc(name)
    pw = passphrase(f"Passphrase for {name}: ", file=passphrase_file) if is_encrypted(doc) \
        else None
    return open_doc(doc, pw)


def resolve_address(text: str) -> str:
    """An address, or the name of a key in the keyring."""
    if text.startswith("smart1") or text.upper().startswith("SMART1"):
        return to_bech32(from_bech32(text))
    try:
        return keyring.read_doc(text)["address"]
    except keyring.KeyringError:
        from_bech32(text)  # raises the address error, which is the likelier mistake
        raise


def require_ok(result: dict[str, Any]) -> dict[str, Any]:
    """A committed transaction that failed paid its fee but did nothing: that is an error
    for the user, reported in one line with the hash to look it up by."""
    receipt = result["receipt"]
    if not receipt["ok"]:
        raise CliError(f"transaction {result['hash']} failed: {receipt['log']} (committed "
                       f"at height {result['height']}; its fee was paid)", "tx_failed",
                       EXIT_TX_FAILED,
                       {"hash": result["hash"], "height": result["height"],
                        "reason": receipt["code_name"], "receipt": receipt})
    return result


def committed_line(result: dict[str, Any]) -> str:
    return (f"tx {result['hash']} committed at height {result['height']} "
            f"(fee {format_hpc(int(result['receipt']['fee']))} HPC)")


PassFile = Annotated[Path | None, typer.Option("--passphrase-file",
                                               help="Read the passphrase from this file.")]
GasPrice = Annotated[int | None, typer.Option(help="Base units per gas.")]
Wait = Annotated[bool, typer.Option(help="Wait until committed.")]


Gas = Annotated[str, typer.Option(
    "--gas", help="Gas limit: 'auto' (simulate, then add 20% and 5,000) or a number.")]
DryRun = Annotated[bool, typer.Option(
    "--dry-run", help="Only simulate on the latest state: print the outcome, send nothing.")]


def sending(gas: str, dry_run: bool) -> dict[str, Any]:
    """The SDK arguments of ``--gas auto|N`` and ``--dry-run`` (``auto``: ``None``)."""
    text = gas.strip().replace("_", "")
    if text.lower() == "auto":
        limit = None
    elif text.isascii() and text.isdigit() and 0 < int(text) < 1 << 64:
        limit = int(text)
    else:
        raise CliError(f"--gas is 'auto' or a positive whole number, not {gas!r}")
    return {"gas_limit": limit, "dry_run": dry_run}


def dry_run_report(result: dict[str, Any]) -> None:
    """Print a simulation (``send_tx(dry_run=True)``): exit 0 if the transaction would
    succeed, else the error it would get, with a non-zero exit."""
    if not result["ok"]:
        raise CliError(f"dry run: the transaction would fail: {result['log']}",
                       result["code_name"], details={"simulation": result})
    emit(result, lambda: out.print(
        f"dry run: would succeed using {result['gas_used']} gas (would send with --gas "
        f"{result['gas_wanted']}); nothing sent"
        + "".join(f"\nevent {e['kind']} {json.dumps(e['attributes'])}"
                  for e in result["events"])))


_SIZE_UNITS = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
               "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(text: str) -> int:
    """Bytes from ``50GiB``, ``1.5 TiB``, ``500MB`` or a plain byte count.

    Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) units, any case; a fraction
    must come to whole bytes. Raises ``ValueError`` with the accepted forms."""
    s = text.strip().replace("_", "")
    i = len(s)
    while i and not (s[i - 1].isdigit() or s[i - 1] == "."):
        i -= 1
    number, unit = s[:i].strip(), s[i:].strip().lower()
    scale = _SIZE_UNITS.get(unit or "b")
    try:
        value = Decimal(number) * scale if scale is not None and number else None
    except InvalidOperation:
        value = None
    if value is None or value != value.to_integral_value() or value < 0:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with a unit "
                         f"(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. 50GiB")
    return int(value)


def report_sent(result: dict[str, Any], wait: bool,
                summary: str | Callable[[dict[str, Any]], str], *,
                highlight: bool = True) -> None:
    """What a command prints once its transaction is sent: the dry run's report, the hash
    when not waiting, or the summary and the committed line (a failure exits). A callable
    ``summary`` reads the committed result (an id from its receipt)."""
    if result["status"] == "simulated":
        dry_run_report(result)
        return
    if not wait:
        emit(result, f"submitted {result['hash']}")
        return
    require_ok(result)
    text = summary(result) if callable(summary) else summary
    emit(result, lambda: out.print(f"{text}\n{committed_line(result)}", highlight=highlight))
