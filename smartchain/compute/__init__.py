"""Distributed compute: tasks are WebAssembly modules run deterministically (``wasm``)."""

from smartchain.compute.wasm import TaskResult, TaskRunner

__all__ = ["TaskResult", "TaskRunner"]
