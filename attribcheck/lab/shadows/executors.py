"""Where shadow models train: any `concurrent.futures.Executor`.

Local processes (spawned, one CPU share each) by default; past one machine, a Dask cluster
(`distributed`, the `attribcheck[distributed]` extra), whose client hands out the same
Executor interface. attribcheck schedules nothing itself.
"""
from __future__ import annotations

import os
from concurrent.futures import Executor


def local_executor(workers: int) -> Executor:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn, not fork: a forked torch may deadlock in its thread pools
    return ProcessPoolExecutor(workers, get_context("spawn"), _init_worker, (threads,))


def dask_executor(address: str) -> Executor:
    """An Executor over a running Dask scheduler (e.g. tcp://host:8786)."""
    try:
        from distributed import Client
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("a Dask cluster needs `pip install 'attribcheck[distributed]'`") from e
    return Client(address).get_executor()


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
