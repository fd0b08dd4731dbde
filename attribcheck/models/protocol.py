"""What decides a model's images (the query protocol) apart from how they are computed (the
runtime).

The protocol is part of a key set and of its content hash: a key is only valid under the
scheduler, step count, guidance, resolution and dtype it was selected with (fp16 and bf16
change a tiny model's images by up to 0.02 RMS against fp32). The runtime (device, batch
size, threads) does not change the images, so it is an option of each run, recorded in the
report and never hashed.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

DTYPES = ("float32", "float16", "bfloat16")


class QueryProtocol(BaseModel):
    """How a model is queried. Untrusted when read from a key set, so every field is checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    scheduler: str = "DDIMScheduler"  # a diffusers scheduler class, built from the model's config
    steps: int = Field(50, ge=1, le=1000)
    guidance_scale: float = Field(1.0, ge=0.0, le=100.0)
    height: Optional[int] = Field(None, ge=8, le=4096)  # None = the pipeline's native resolution
    width: Optional[int] = Field(None, ge=8, le=4096)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"

    @field_validator("scheduler")
    @classmethod
    def _scheduler_name(cls, v: str) -> str:
        # A name, checked against diffusers' schedulers when it is used (scheduler_class);
        # here only its shape, so a key set loads without importing diffusers.
        if not (v.isidentifier() and v.endswith("Scheduler")):
            raise ValueError(f"{v!r} is not a diffusers scheduler class name")
        return v

    def scheduler_class(self):
        """The diffusers scheduler class the protocol names; nothing else is ever looked up."""
        import diffusers
        from diffusers import SchedulerMixin

        cls = getattr(diffusers, self.scheduler, None)
        if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
            raise ValueError(f"scheduler {self.scheduler!r} is not a diffusers scheduler")
        return cls

    def to_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: dict) -> "QueryProtocol":
        return cls.model_validate(data)

    def save(self, path) -> None:
        """The file `keys select --protocol` reads (`load`)."""
        from attribcheck.outputs import write_atomic

        write_atomic(path, self.model_dump_json(indent=2) + "\n", "protocol")

    @classmethod
    def load(cls, path) -> "QueryProtocol":
        from pathlib import Path

        from attribcheck.errors import from_validation
        from attribcheck.safe_files import read_text_bounded

        path = Path(path)
        text = read_text_bounded(path)  # a regular file (a FIFO would hang), of bounded size
        try:
            return cls.model_validate_json(text)
        except Exception as e:  # pydantic.ValidationError, one line
            raise from_validation(e, path) from e


def available_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(workers: int = 1, load: float | None = None) -> int:
    """torch CPU threads for one of `workers` processes sharing this machine: OMP_NUM_THREADS
    when it is set (the user's own choice), else the cores other jobs leave free (the cores
    less the 1-minute load average, rounded), shared out, at least 1. torch's own default
    (every core, in every process) oversubscribes a shared machine: on this project's 2-core
    box at load 2, the tiny world's source took 10.7 s an image at 2 threads against 0.47 s at
    one (`python -m attribcheck.bench threads`, docs/bench_threads.json); the suites once took
    928 s against 43 s. `load`: the load average to assume (default: the machine's)."""
    import os

    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) >= 1:
        return int(env)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average (Windows): assume an idle machine
            load = 0.0
    free = max(1, int(available_cores() - load + 0.5))
    return max(1, free // max(1, workers))


def worker_device(device: str, worker: str | None, gpus: int) -> str:
    """The device of xdist worker `worker` ("gw3"): with a bare "cuda" and several GPUs, worker
    i runs on cuda:(i mod GPUs); an explicit "cuda:N", the CPU, or a single GPU stay as given."""
    if device != "cuda" or gpus < 2 or not worker or not worker.startswith("gw") or not worker[2:].isdigit():
        return device
    return f"cuda:{int(worker[2:]) % gpus}"


class Runtime(BaseModel):
    """How this run computes images: never part of a key set, recorded in the report."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: str = "cpu"
    batch_size: int = Field(64, ge=1)
    threads: Optional[int] = Field(None, ge=1)  # torch threads on the CPU; None: torch's default

    def apply_threads(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
