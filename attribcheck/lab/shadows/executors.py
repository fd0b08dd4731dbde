"""Where shadow models train: any `concurrent.futures.Executor` (attribcheck/executors.py, where
the core's fan-out finds them too; re-exported here for the lab's callers)."""
from __future__ import annotations

from attribcheck.executors import _init_worker, dask_executor, local_executor  # noqa: F401
