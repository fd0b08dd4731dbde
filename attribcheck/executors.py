"""Where work runs past one process: any `concurrent.futures.Executor`.

Shadow training (the lab), key selection's generations (`keys/fanout.py`) and audits of many
suspects (`AuditSession.run(executor)`) hand work units to an Executor; attribcheck schedules
nothing itself. Local processes (spawned, a share of the cores each) by default; past one
machine, a Dask cluster (`distributed`, the `attribcheck[distributed]` extra, one worker per
GPU), whose client hands out the same Executor interface.
"""
from __future__ import annotations

from concurrent.futures import Executor


def local_executor(workers: int) -> Executor:
    """`workers` spawned processes, each with its share of the cores as torch threads (the one
    rule: models/protocol.py `default_threads`) and, on a machine with several GPUs, its own GPU
    (worker i: GPU i mod their number)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from attribcheck.models.protocol import default_threads

    threads = default_threads(workers)
    spawn = get_context("spawn")  # not fork: a forked torch may deadlock in its thread pools
    return ProcessPoolExecutor(workers, spawn, _init_worker, (threads, spawn.Value("i", 0)))


def dask_executor(address: str) -> Executor:
    """An Executor over a running Dask scheduler (e.g. tcp://host:8786)."""
    try:
        from distributed import Client
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("a Dask cluster needs `pip install 'attribcheck[distributed]'`") from e
    try:
        client = Client(address)
    except (ValueError, OSError) as e:  # no port, a refused connection, a timeout (Dask's connect timeout)
        from attribcheck.errors import InputError

        raise InputError(f"no Dask scheduler reached at {address!r}: {str(e).strip().splitlines()[0]}",
                         field="--dask") from e
    return _Dask(client)


class _Dask(Executor):
    """A Dask client's Executor that closes the client when it is shut down."""

    def __init__(self, client):
        self.client, self.executor = client, client.get_executor()

    def submit(self, fn, /, *args, **kwargs):
        return self.executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.executor.shutdown(wait=wait)
        self.client.close()


def executor_for(workers: int = 1, dask: str | None = None) -> Executor | None:
    """The CLI's choice: a Dask cluster at `dask`, else `workers` local processes; None for one
    worker (the work runs in this process, as it always has)."""
    if dask:
        return dask_executor(dask)
    if workers < 1:
        from attribcheck.errors import InputError

        raise InputError(f"{workers} workers; give 1 or more", field="--workers")
    return local_executor(workers) if workers > 1 else None


def _init_worker(threads: int, started=None) -> None:
    import torch

    torch.set_num_threads(threads)
    if started is None:
        return
    with started.get_lock():  # this worker's number, in the order the workers started
        index = started.value
        started.value += 1
    # One worker per GPU: each makes its own the current device, which a bare "cuda" (the
    # runtime's device, and the cache key's) means. Nothing is touched on a machine with one.
    if torch.cuda.is_available() and torch.cuda.device_count() > 1:
        torch.cuda.set_device(index % torch.cuda.device_count())
