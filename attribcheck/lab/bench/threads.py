"""`python -m attribcheck.bench threads`: seconds per image at each torch thread count, on
this machine as it is (other jobs included), for the tiny world's source and, when built, an
SD-1.5-shaped pipeline (`attribcheck realsize build`). Issue 17 asks that the default thread
count (`models/protocol.py: default_threads`) not oversubscribe a shared machine: this
measures what each count costs, beside the load average the default would see.

Each count runs in a child process of its own (torch fixes its pool at first use), which
loads the model, warms up on one image and then times `--images` more.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TINY = "fixtures/world/emoji/models/source"
CAPTION = "a red apple emoji"


def _child(path: str, threads: int, images: int, size: int | None, steps: int) -> dict:
    from attribcheck.models.protocol import QueryProtocol, Runtime
    from attribcheck.models.spec import SuspectSpec, open_generator

    protocol = QueryProtocol(steps=steps, height=size, width=size)
    gen = open_generator(SuspectSpec("m", Path(path), "innocent"), protocol, Runtime(threads=threads, batch_size=1))
    gen.generate([CAPTION], [0])  # warm-up: loads and builds kernels
    t0 = time.perf_counter()
    gen.generate([CAPTION] * images, list(range(1, images + 1)))
    return {"threads": threads, "seconds_per_image": (time.perf_counter() - t0) / images}


def measure(path: str, threads: int, images: int, size: int | None, steps: int) -> dict:
    code = ("import json, sys; from attribcheck.lab.bench.threads import _child; "
            f"print(json.dumps(_child({path!r}, {threads}, {images}, {size!r}, {steps})))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    load = os.getloadavg()[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "load_before": round(load, 2)}


def run(args) -> int:
    from attribcheck.models.protocol import available_cores, default_threads

    cores = available_cores()
    counts = sorted({1, max(1, cores // 2), cores})
    models = [("tiny (emoji source, 32 px, 50 steps)", TINY, args.images, None, 50)]
    real = Path(args.realsize) if args.realsize else None
    if real is not None and (real / "model_index.json").is_file():
        models.append((f"SD-1.5 shape (512², {args.real_steps} steps)", str(real), 1, 512, args.real_steps))
    rows = []
    for label, path, n, size, steps in models:
        for t in counts:
            r = {"model": label, **measure(path, t, n, size, steps)}
            rows.append(r)
            print(f"{label:40s} threads {t}: {r['seconds_per_image']:.3f} s/image (load {r['load_before']})", flush=True)
    result = {"cores": cores, "default_threads": default_threads(), "load_average": os.getloadavg(), "rows": rows}
    for label, *_ in models:
        base = next(r for r in rows if r["model"] == label and r["threads"] == 1)["seconds_per_image"]
        for r in rows:
            if r["model"] == label:
                r["time_vs_one_thread"] = round(r["seconds_per_image"] / base, 2)
    if args.json:
        from attribcheck.outputs import write_atomic

        write_atomic(args.json, json.dumps(result, indent=1) + "\n", "bench json")
    print(json.dumps(result, indent=1))
    return 0
