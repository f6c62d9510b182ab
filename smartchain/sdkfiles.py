"""Stored files and compute jobs from the SDK (``client.storage``, ``client.compute``), with
the code ``smart store`` and ``smart compute run`` use: the CLI adds checks worded for a
terminal and progress bars, nothing else.

Storage talks to providers over P2P (``smartchain.storage.client``) and reads the chain
through a ``ChainView`` over the blocking ``Client``, whose calls it runs in threads; the
async methods here are the implementation and the blocking ones run them with
``asyncio.run`` (so they cannot be called from inside a running event loop: use
``AsyncClient.storage`` there). pyeclib and the P2P stack load only when a file moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smartchain import sdkcore as core
from smartchain.compute.jobspec import JobSpec, check_fits, check_modules, load_spec, parse_spec
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.compute.sdk import posted_job_id
from smartchain.modules.sdk import ApiError
from smartchain.p2p.peers import P2P, P2PConfig
from smartchain.sdkcore import Flow

if TYPE_CHECKING:
    from smartchain.aio import AsyncClient
    from smartchain.client import Client
    from smartchain.storage.client import ApiChainView, GetResult, Progress, PutResult

DEFAULT_REDUNDANCY = (4, 6)
DEFAULT_EPOCHS = 30
LONG_TAIL = 2  # reserve columns a straggler's column moves to (storage.client.MAX_EXTRA)
REQUEST_TIMEOUT = 30.0
FileData = bytes | str | Path


# --- storage: shared with ``smart store`` -------------------------------------------------


@contextlib.asynccontextmanager
async def client_p2p(network_id: str) -> AsyncIterator[P2P]:
    """A P2P endpoint with a throwaway identity: it dials providers, relays nothing, and
    learns no peers (providers know a client only by its requests and signed receipts)."""
    p2p = P2P(PrivateKey.generate(), network_id, "127.0.0.1", 0, max_peers=256,
              config=P2PConfig(pex=False))
    await p2p.start()
    try:
        yield p2p
    finally:
        await p2p.stop()


async def put_file(view: ApiChainView, key: PrivateKey, data: bytes | Path, *, k: int, n: int,
                   epochs: int, repair_threshold: int | None = None, extra: int = LONG_TAIL,
                   timeout: float = REQUEST_TIMEOUT,
                   progress: Progress | None = None) -> PutResult:
    """Encrypt, erasure-code and upload ``data`` k-of-n for ``key``, then post its deal."""
    from smartchain.storage import client as sc

    async with client_p2p(view.network_id) as p2p:
        return await sc.put(p2p, view, key, data, k=k, n=n, epochs=epochs,
                            repair_threshold=repair_threshold, progress=progress,
                            timeout=timeout, extra=extra,
                            max_columns=int(view.status.get("storage_max_columns", 32)))


async def get_file(view: ApiChainView, key: PrivateKey, file_id: bytes, out_path: Path, *,
                   file_key: bytes | None = None, timeout: float = REQUEST_TIMEOUT,
                   extra: int = 0, progress: Progress | None = None) -> GetResult:
    """Fetch, verify and decrypt a stored file into ``out_path`` (``file_key``: the key a
    share gave; without it ``key`` must be the owner's)."""
    from smartchain.storage import client as sc

    async with client_p2p(view.network_id) as p2p:
        return await sc.get(p2p, view, key, file_id, out_path, progress=progress,
                            timeout=timeout, extra=extra, file_key=file_key)


def is_shared(client: Client, file_id: bytes, address: str) -> bool:
    """Whether the file's owner shared its key with ``address``."""
    try:
        client.data_share(file_id, address)
    except ApiError as exc:
        if exc.code == "not_found":
            return False
        raise
    return True


def file_key_for(client: Client, key: PrivateKey, file_id: bytes) -> bytes | None:
    """How ``key`` opens the file: ``None`` for its owner (its seed derives the key), the
    shared key when the owner shared it; ``NotOwner`` otherwise."""
    from smartchain.storage import client as sc
    from smartchain.storage.datasets import shared_key

    owner = client.storage_deal(file_id)["owner"]
    address = to_bech32(key.address)
    if owner == address:
        return None
    if not is_shared(client, file_id, address):
        raise sc.NotOwner(f"file {file_id.hex()} belongs to {owner} and is not shared with "
                          f"{address}")
    return shared_key(client, key, file_id, address)


def _file_id(file_id: str | bytes) -> bytes:
    raw = bytes.fromhex(file_id) if isinstance(file_id, str) else bytes(file_id)
    if len(raw) != 32:
        raise ValueError(f"a file id is 32 bytes (64 hex characters), got {file_id!r}")
    return raw


class AsyncStorageFiles:
    """``AsyncClient.storage`` (and what ``Client.storage`` runs): files put on the
    network's storage providers, encrypted for their owner, erasure-coded, paid from
    escrow. Errors: ``smartchain.storage.client.StorageError`` (``NotEnoughProviders``,
    ``UploadFailed``, ``NotOwner``, ...) or ``ApiError``."""

    def __init__(self, client: Client) -> None:
        self.client = client  # blocking: the storage code calls its chain view in threads

    async def _view(self, key: PrivateKey) -> ApiChainView:
        from smartchain.storage.client import ApiChainView

        return await asyncio.to_thread(ApiChainView, self.client, key)

    async def put(self, key: PrivateKey, data: FileData, *,
                  redundancy: tuple[int, int] = DEFAULT_REDUNDANCY,
                  epochs: int = DEFAULT_EPOCHS, repair_threshold: int | None = None,
                  timeout: float = REQUEST_TIMEOUT) -> str:
        """Store ``data`` (bytes, or a file's path) for ``key``, ``redundancy`` (k, n): any
        k of n pieces rebuild it. Returns the file id (hex) once its deal is committed."""
        k, n = redundancy
        source = data if isinstance(data, bytes) else Path(data)
        res = await put_file(await self._view(key), key, source, k=k, n=n, epochs=epochs,
                             repair_threshold=repair_threshold, timeout=timeout)
        return res.file_id.hex()

    async def download(self, key: PrivateKey, file_id: str | bytes, out_path: str | Path, *,
                       timeout: float = REQUEST_TIMEOUT) -> GetResult:
        """Fetch a file ``key`` owns, or was shared, into ``out_path`` (written only once
        every segment verified)."""
        fid = _file_id(file_id)
        file_key = await asyncio.to_thread(file_key_for, self.client, key, fid)
        return await get_file(await self._view(key), key, fid, Path(out_path),
                              file_key=file_key, timeout=timeout)

    async def get(self, key: PrivateKey, file_id: str | bytes, *,
                  timeout: float = REQUEST_TIMEOUT) -> bytes:
        """The file's bytes (``download`` to a file for large ones)."""
        with tempfile.TemporaryDirectory(prefix="smart-get-") as tmp:
            res = await self.download(key, file_id, Path(tmp) / "file", timeout=timeout)
            return res.path.read_bytes()

    async def share(self, key: PrivateKey, file_id: str | bytes,
                    with_address: str) -> dict[str, Any]:
        """Let ``with_address`` read the file: its key sealed to that account's box key
        (``register_box_key``). Returns the committed transaction; ``TxFailed`` if it
        failed, ``ApiError`` ``not_found`` if the account has no box key."""
        from smartchain.storage.datasets import share_key

        result = await asyncio.to_thread(share_key, self.client, key, _file_id(file_id),
                                         with_address)
        return core.require_ok(result)


class StorageFiles:
    """``Client.storage``: ``AsyncStorageFiles``, blocking."""

    def __init__(self, client: Client) -> None:
        self._files = AsyncStorageFiles(client)

    def put(self, key: PrivateKey, data: FileData, *,
            redundancy: tuple[int, int] = DEFAULT_REDUNDANCY, epochs: int = DEFAULT_EPOCHS,
            repair_threshold: int | None = None, timeout: float = REQUEST_TIMEOUT) -> str:
        return asyncio.run(self._files.put(key, data, redundancy=redundancy, epochs=epochs,
                                           repair_threshold=repair_threshold, timeout=timeout))

    def download(self, key: PrivateKey, file_id: str | bytes, out_path: str | Path, *,
                 timeout: float = REQUEST_TIMEOUT) -> GetResult:
        return asyncio.run(self._files.download(key, file_id, out_path, timeout=timeout))

    def get(self, key: PrivateKey, file_id: str | bytes, *,
            timeout: float = REQUEST_TIMEOUT) -> bytes:
        return asyncio.run(self._files.get(key, file_id, timeout=timeout))

    def share(self, key: PrivateKey, file_id: str | bytes, with_address: str
              ) -> dict[str, Any]:
        return asyncio.run(self._files.share(key, file_id, with_address))


# --- compute jobs -------------------------------------------------------------------------

SpecSource = JobSpec | dict[str, Any] | str | Path


def job_spec(spec: SpecSource, base: Path | None = None,
             fetch: Callable[[bytes], bytes] | None = None) -> JobSpec:
    """A ``JobSpec`` from a spec file's path, a parsed spec document (paths relative to
    ``base``, the working directory by default) or a ``JobSpec``; its modules checked."""
    if isinstance(spec, JobSpec):
        parsed = spec
    elif isinstance(spec, dict):
        parsed = parse_spec(spec, base or Path.cwd(), fetch)
    else:
        parsed = load_spec(Path(spec), fetch)
    check_modules(parsed)
    return parsed


def post_job(key: PrivateKey, spec: JobSpec, *, gas_limit: int | None = None,
             gas_price: int | None = None) -> Flow[int]:
    """Post ``spec`` as a job (its escrow locked) once it fits this chain; its id."""
    payload = check_fits(spec, (yield from core.status()))
    result = yield from core.send_tx(key, "compute/post_job", payload, gas_limit=gas_limit,
                                     gas_price=gas_price)
    return posted_job_id(core.require_ok(result))


class ComputeJobs:
    """``Client.compute``: jobs from the job specs ``smart compute run`` takes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def spec(self, spec: SpecSource, *, base: Path | None = None,
             key: PrivateKey | None = None) -> JobSpec:
        """Parse and check a spec; an ``input_stored`` file is fetched with ``key``."""
        fetch = None if key is None else (lambda fid: self.client.storage.get(key, fid))
        return job_spec(spec, base, fetch)

    def submit(self, key: PrivateKey, spec: SpecSource, *, base: Path | None = None,
               gas_limit: int | None = None, gas_price: int | None = None) -> int:
        """Post the job; returns its id (``compute_job(id)``, ``compute_result(id)``).
        ``JobError`` for a spec that does not hold together (nothing sent)."""
        return self.client._run(post_job(key, self.spec(spec, base=base, key=key),
                                         gas_limit=gas_limit, gas_price=gas_price))


class AsyncComputeJobs:
    """``AsyncClient.compute``: ``ComputeJobs``, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def spec(self, spec: SpecSource, *, base: Path | None = None,
                   key: PrivateKey | None = None) -> JobSpec:
        """Parse and check a spec (off the event loop: it reads files and compiles the
        modules); an ``input_stored`` file is fetched with ``key``."""
        files = self.client.storage
        fetch = None if key is None else (lambda fid: asyncio.run(files.get(key, fid)))
        return await asyncio.to_thread(job_spec, spec, base, fetch)

    async def submit(self, key: PrivateKey, spec: SpecSource, *, base: Path | None = None,
                     gas_limit: int | None = None, gas_price: int | None = None) -> int:
        parsed = await self.spec(spec, base=base, key=key)
        return await self.client._run(post_job(key, parsed, gas_limit=gas_limit,
                                               gas_price=gas_price))
