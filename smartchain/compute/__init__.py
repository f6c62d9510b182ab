"""Distributed compute: tasks are WebAssembly modules run deterministically (``wasm``), or Lua
sources (first line ``--!lua``) run in the contracts sandbox (``lua``); ``TaskRunner`` runs
both."""

from smartchain.compute.result import TaskResult
from smartchain.compute.wasm import TaskRunner

__all__ = ["TaskResult", "TaskRunner"]
