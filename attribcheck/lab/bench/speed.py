"""`python -m attribcheck.bench speed`: what the generation cache, xdist and early stopping buy,
as ratios measured in one run on one machine (never a timed test: figures are printed).

1. `pytest suites/` cold (a fresh, empty cache folder) and warm (the same folder again):
   the ratio, and whether every verdict is the same.
2. serial against `-n 2`, each cold with its own fresh cache folder (each suspect is
   computed once whichever worker asks: a per-model lock around compute-then-cache).
3. one suspect's audit (no cache) against a minimal hand-written batched diffusers loop doing
   the same work (load, sample every key under every seed in one batch, RMS, min): the
   harness's overhead.
4. early stopping: queries asked against the full audit's, per suspect, and whether the
   verdict is the same (answers read from the warm cache of 1., so this costs nothing).

Every process runs with the same torch thread count (--threads, default 1: a shared CPU box).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _pytest(suites: str, cache: Path, out_json: Path, threads: int, extra: list[str] = ()) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "pytest", suites, "-q", "-p", "no:cacheprovider", "--attrib-cache-dir", str(cache),
           "--attrib-json", str(out_json), *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if r.returncode not in (0, 1):  # 1: a test failed, which is a verdict, still a figure
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return elapsed


def _verdicts(path: Path) -> dict:
    report = json.loads(path.read_text())
    return {(a["name"], s["name"]): (s.get("instance") or {}).get("verdict") for a in report["audits"]
            for s in a["suspects"]}


def _hand_loop(path: Path, keyset, threads: int) -> tuple[float, list[float]]:
    """The minimal batched diffusers loop an engineer would write by hand."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    torch.set_num_threads(threads)
    t = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(str(path), local_files_only=True, safety_checker=None)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    seeds = list(keyset.query_seeds)
    prompts = [c for c in keyset.captions for _ in seeds]
    gens = [torch.Generator().manual_seed(s) for _ in keyset.captions for s in seeds]
    with torch.no_grad():
        imgs = pipe(prompts, num_inference_steps=keyset.protocol.steps, guidance_scale=keyset.protocol.guidance_scale,
                    generator=gens, output_type="np").images
    imgs = np.clip(imgs, 0, 1).reshape(len(keyset.captions), len(seeds), *imgs.shape[1:])
    dists = [float(min(np.sqrt(np.mean((im[..., :3] - key[..., :3]) ** 2)) for im in row))
             for row, key in zip(imgs, keyset.images)]
    return time.perf_counter() - t, dists


def run(args) -> int:
    from attribcheck.audit.early_stop import audit_early
    from attribcheck.audit.run import audit_suspect, auditor_for
    from attribcheck.cache import GenerationCache
    from attribcheck.manifest import Manifest
    from attribcheck.models.spec import open_generator
    from attribcheck.models.protocol import Runtime

    threads = args.threads
    figures: dict = {"threads": threads, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="attribcheck-speed-") as tmp:
        tmp = Path(tmp)
        # 1. cold and warm
        cold = _pytest(args.suites, tmp / "cache", tmp / "cold.json", threads)
        warm = _pytest(args.suites, tmp / "cache", tmp / "warm.json", threads)
        same = _verdicts(tmp / "cold.json") == _verdicts(tmp / "warm.json")
        figures["cache"] = {"cold_s": cold, "warm_s": warm, "ratio": cold / warm, "same_verdicts": same}
        print(f"pytest {args.suites}: cold {cold:.1f} s, warm {warm:.1f} s: warm re-run {cold / warm:.1f}x faster; "
              f"verdicts {'identical' if same else 'DIFFER'}", flush=True)

        # 2. serial against -n 2
        if args.workers > 1:
            par = _pytest(args.suites, tmp / "cache-n", tmp / "par.json", max(1, threads),
                          ["-n", str(args.workers)])
            same_par = _verdicts(tmp / "cold.json") == _verdicts(tmp / "par.json")
            figures["xdist"] = {"serial_s": cold, "parallel_s": par, "workers": args.workers,
                                "speedup": cold / par, "same_verdicts": same_par}
            print(f"-n {args.workers} (cold): {par:.1f} s against serial {cold:.1f} s: {cold / par:.2f}x "
                  f"(>1 = faster); verdicts {'identical' if same_par else 'DIFFER'}", flush=True)

        # 3. the audit against a hand-written loop, one suspect, no cache
        manifest = Manifest.load(args.manifest)
        auditor = auditor_for(manifest)
        spec = next(s for s in manifest.suspects if s.name == args.suspect) if args.suspect else manifest.suspects[0]
        runtime = Runtime(threads=threads, batch_size=len(auditor.keyset) * len(auditor.keyset.query_seeds))
        # imports and first-use set-up out of the way for both (a cold import of torch and
        # diffusers costs more than the whole audit of a tiny model), then the better of two each
        from attribcheck.models.diffusers_generator import load_pipeline

        warm = load_pipeline(spec.path)
        warm.set_progress_bar_config(disable=True)
        warm(["warm-up"], num_inference_steps=1, output_type="np")
        audit_runs, loop_runs = [], []
        for _ in range(2):
            t = time.perf_counter()
            result = audit_suspect(auditor, spec, runtime)
            audit_runs.append(time.perf_counter() - t)
            loop_runs.append(_hand_loop(spec.path, auditor.keyset, threads))
        audit_s = min(audit_runs)
        loop_s, loop_d = min(loop_runs)
        agree = result.verdict is not None and max(abs(a - b) for a, b in zip(result.verdict.distances, loop_d)) < 1e-4
        figures["overhead"] = {"suspect": spec.name, "audit_s": audit_s, "loop_s": loop_s, "ratio": audit_s / loop_s,
                               "same_distances": agree}
        print(f"{spec.name}: audit {audit_s:.1f} s, hand-written batched loop {loop_s:.1f} s: "
              f"{audit_s / loop_s:.2f}x; distances {'agree' if agree else 'DIFFER'}", flush=True)

        # 4. early stopping, answers from the warm cache
        cache = GenerationCache(tmp / "cache")
        asked = {"rounds": 0, "keys": 0}
        full = 0
        rows = []
        print("early stopping (answers from the warm cache); asked in whole rounds (a model) / key by key (an API):")
        for s in [manifest.source_spec] + manifest.suspects:
            gen = open_generator(s, auditor.keyset.protocol, runtime, cache)
            whole = auditor.audit(gen, s.name)
            by_round, q = audit_early(auditor, gen, s.name)
            by_key, q1 = audit_early(auditor, gen, s.name, chunk=1)
            same_v = by_round.verdict == whole.verdict == by_key.verdict
            asked["rounds"] += q.asked
            asked["keys"] += q1.asked
            full += q.full
            rows.append({"suspect": s.name, "asked_rounds": q.asked, "asked_keys": q1.asked, "full": q.full,
                         "verdict": whole.verdict, "same_verdict": same_v})
            print(f"  {s.name:24s} {whole.verdict:12s} {q.asked:3d} / {q1.asked:3d} of {q.full} queries, "
                  f"verdict {'same' if same_v else 'DIFFERS'}")
        figures["early_stop"] = {"asked": asked, "full": full, "suspects": rows,
                                 "same_verdicts": all(r["same_verdict"] for r in rows)}
        for how, n in asked.items():
            print(f"early stopping ({'whole rounds' if how == 'rounds' else 'key by key'}): {n} of {full} queries "
                  f"({100 * (1 - n / full):.0f}% saved, {full / n:.2f}x fewer)")
        print(f"verdicts {'identical' if figures['early_stop']['same_verdicts'] else 'DIFFER'} to the full audit's")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0
