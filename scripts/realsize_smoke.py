"""One answer from a built real-size pipeline through the audit's generator, timed: what a
machine too small for `python -m attribcheck.bench realsize` can still say about a preset.

    OMP_NUM_THREADS=1 python scripts/realsize_smoke.py ~/.cache/attribcheck/realsize/sdxl-s0 --size 1024 --steps 1
"""
import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from attribcheck.fingerprint import fingerprint
from attribcheck.models.protocol import QueryProtocol, Runtime
from attribcheck.models.spec import SuspectSpec, open_generator


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder", type=Path)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1)
    args = ap.parse_args()
    out = {}
    t0 = time.perf_counter()
    fingerprint(args.folder)  # what every audit computes first: the identity the cache and pins use
    out["fingerprint_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = open_generator(SuspectSpec("smoke", args.folder, "infringing"),
                         QueryProtocol(steps=args.steps, height=args.size, width=args.size),
                         Runtime(threads=1, batch_size=1))
    out["open_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    img = gen.generate(["a lighthouse at dusk"], [0])[0]
    out["one_answer_s"] = time.perf_counter() - t0
    out.update(pipeline=type(gen.pipeline).__name__, shape=list(img.shape), finite=bool(np.isfinite(img).all()),
               peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
