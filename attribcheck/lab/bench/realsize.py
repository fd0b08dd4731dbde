"""`python -m attribcheck.bench realsize`: the audit's own code path on Stable Diffusion
1.5-shaped pipelines (randomly initialised, attribcheck/lab/realsize), against a hand-written
batched diffusers loop doing the same work, in the same run.

Each variant runs in a child process of its own, so its peak memory (ru_maxrss, and the
GPU's max_memory_allocated on cuda) is its alone:
  keys          the source's own answers to K captions at one seed become a K-key key set
  loop          the pipeline's own __call__ on every (caption, query seed), batched: load, sample, RMS, min
  audit         audit_suspect on the source (self-check) and a suspect (another seed), no cache
  audit-early   the same with early stopping
  audit-cold    with a fresh generation cache (fills it)
  audit-warm    the same cache again (no model is loaded)
  audit-warm-early
Then, in this process, the conformance check, the metric and the evidence page on synthetic
images at 512² and 1024².

The smoke size (default: 2 keys x 1 seed x 2 DDIM steps at 512², CPU, fp32) finishes in
minutes here; `--full` is the issue's GPU protocol (30 keys x 4 seeds x 50 steps, fp16, cuda).
Random weights memorize nothing: the verdicts are not figures, only that they agree.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

VARIANTS = ("keys", "loop", "audit", "audit-early", "audit-cold", "audit-warm", "audit-warm-early")
CAPTIONS = ("a red bicycle leaning on a stone wall", "a lighthouse at dusk", "a bowl of lemons on a table",
            "an astronaut riding a horse", "a snowy mountain village", "a cat asleep on a piano")
# The keys are the source's answers at the first query seed: the self-check reproduces them (an
# infringer's case: early stopping ends after one round), the suspect, another random model, none
KEY_SEED = 0
# the GPU protocol; 40 images per pipeline call (a third of a model's 120 queries)
FULL = dict(keys=30, seeds=4, steps=50, dtype="float16", device="cuda", batch=40)


@dataclass
class Plan:
    source: str
    suspect: str
    work: str  # the run's folder: keys.npz, the generation cache
    keys: int = 2
    seeds: int = 1
    steps: int = 2
    size: int = 512
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = 1
    batch: int | None = None  # None: every query of a model in one call (the audit's default batching)
    captions: list = field(default_factory=list)

    def protocol(self):
        from attribcheck.models.protocol import QueryProtocol

        return QueryProtocol(steps=self.steps, height=self.size, width=self.size, dtype=self.dtype)

    def runtime(self):
        from attribcheck.models.protocol import Runtime

        return Runtime(device=self.device, threads=self.threads, batch_size=self.batch or self.keys * self.seeds)


def _peak(plan: Plan) -> dict:
    use = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds as well as wall seconds: on a shared machine the wall clock counts the neighbours too
    out = {"peak_rss_bytes": use.ru_maxrss * 1024, "cpu_s": use.ru_utime + use.ru_stime}  # ru_maxrss: KiB on Linux
    if plan.device.startswith("cuda"):
        import torch

        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
    return out


def _sync(plan: Plan) -> None:
    if plan.device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _keyset(plan: Plan):
    import numpy as np

    from attribcheck.keys.keyset import Key, KeySet

    data = np.load(Path(plan.work) / "keys.npz")
    keys = [Key(f"k{i}", c, img, r_source=0.0) for i, (c, img) in enumerate(zip(plan.captions, data["images"]))]
    # fewer than MIN_KEYS keys is fine in memory (never saved): this measures time, not evidence
    return KeySet(keys, "realsize-own-answers", 0.15, {"name": "rms", "side": None}, plan.protocol(),
                  list(range(plan.seeds)), candidates=len(keys))


def _make_keys(plan: Plan) -> dict:
    import numpy as np

    from attribcheck.fingerprint import fingerprint
    from attribcheck.models.diffusers_generator import DiffusersGenerator, fitting_batch

    t = time.perf_counter()
    gen = DiffusersGenerator.from_path(plan.source, plan.protocol(), "source", runtime=plan.runtime())
    load = time.perf_counter() - t
    t = time.perf_counter()
    images = gen.generate(plan.captions, [KEY_SEED] * plan.keys)
    _sync(plan)
    gen_s = time.perf_counter() - t
    np.savez(Path(plan.work) / "keys.npz", images=np.stack(images))
    procs = sorted({type(p).__name__ for p in gen.pipeline.unet.attn_processors.values()} |
                   {type(p).__name__ for p in gen.pipeline.vae.attn_processors.values()})
    t = time.perf_counter()
    fingerprint(plan.source)  # what every audit_suspect does first (the report's fingerprint, the cache identity)
    fp = time.perf_counter() - t
    return {"load_s": load, "generate_s": gen_s, "images": plan.keys, "s_per_image": gen_s / plan.keys,
            "attention_processors": procs, "vae_slicing": bool(getattr(gen.pipeline.vae, "use_slicing", False)),
            "fingerprint_s": fp, "batch_fitting_now": fitting_batch(plan.keys * plan.seeds, plan.size, plan.size,
                                                                    plan.dtype, plan.device)}


def _hand_loop(plan: Plan) -> dict:
    """The minimal batched diffusers loop an engineer would write by hand, per model."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    torch.set_num_threads(plan.threads)
    keys = np.round(np.clip(np.load(Path(plan.work) / "keys.npz")["images"], 0, 1) * 255) / 255  # as a Key holds it
    seeds = list(range(plan.seeds))
    prompts = [c for c in plan.captions for _ in seeds]
    batch = plan.batch or len(prompts)
    rows, total = {}, time.perf_counter()
    for name, path in (("source", plan.source), ("suspect", plan.suspect)):
        pipe = StableDiffusionPipeline.from_pretrained(path, torch_dtype=getattr(torch, plan.dtype),
                                                       safety_checker=None, local_files_only=True)
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        pipe = pipe.to(plan.device)
        imgs = []
        for i in range(0, len(prompts), batch):
            gens = [torch.Generator().manual_seed(s) for s in (seeds * plan.keys)[i:i + batch]]
            with torch.no_grad():
                imgs.append(pipe(prompts[i:i + batch], num_inference_steps=plan.steps, guidance_scale=1.0,
                                 height=plan.size, width=plan.size, generator=gens, output_type="np").images)
        imgs = np.clip(np.concatenate(imgs), 0, 1).reshape(plan.keys, len(seeds), *keys.shape[1:])
        rows[name] = [float(min(np.sqrt(np.mean((im - key) ** 2)) for im in row)) for row, key in zip(imgs, keys)]
        del pipe
    _sync(plan)
    seconds = time.perf_counter() - total
    n = 2 * len(prompts)
    return {"seconds": seconds, "images": n, "s_per_image": seconds / n, "distances": rows}


def _audit(plan: Plan, cache: bool, early: bool) -> dict:
    from attribcheck.audit.auditor import Auditor
    from attribcheck.audit.run import audit_suspect
    from attribcheck.cache import GenerationCache
    from attribcheck.models.spec import SuspectSpec

    auditor = Auditor(_keyset(plan))
    store = GenerationCache(Path(plan.work) / "cache") if cache else None
    rows, total = {}, time.perf_counter()
    for name, path, role in (("source", plan.source, "source"), ("suspect", plan.suspect, "suspect")):
        spec = SuspectSpec(name, Path(path), "infringing" if role == "source" else "innocent")
        t = time.perf_counter()
        r = audit_suspect(auditor, spec, plan.runtime(), role=role, cache=store, early_stop=early)
        _sync(plan)
        if r.error is not None:
            raise RuntimeError(f"{name}: {type(r.error).__name__}: {r.error}")
        rows[name] = {"seconds": time.perf_counter() - t, "verdict": r.verdict.verdict,
                      "distances": r.verdict.distances,
                      "queries": r.queries.asked if r.queries is not None else plan.keys * plan.seeds}
    seconds = time.perf_counter() - total
    out = {"seconds": seconds, "rows": rows}
    if store is not None:
        files = [p for p in store.root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
        out["cache_entries"], out["cache_bytes"] = len(files), sum(p.stat().st_size for p in files)
    return out


def child(variant: str, plan: Plan) -> dict:
    from attribcheck.models.diffusers_generator import silence

    silence()
    # imports and lazy diffusers classes before any clock starts, for the loop and the audit alike
    from diffusers import AutoPipelineForText2Image, DDIMScheduler, StableDiffusionPipeline  # noqa: F401

    from attribcheck.models import builtin_kinds  # noqa: F401
    if variant == "keys":
        out = _make_keys(plan)
    elif variant == "loop":
        out = _hand_loop(plan)
    else:
        out = _audit(plan, cache="cold" in variant or "warm" in variant, early=variant.endswith("early"))
    return {**out, **_peak(plan)}


def _spawn(variant: str, plan: Plan) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(plan.threads), MKL_NUM_THREADS=str(plan.threads))
    cmd = [sys.executable, "-m", "attribcheck.lab.bench.realsize", variant, json.dumps(asdict(plan))]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"variant {variant} exited {r.returncode}:\n{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t  # with imports and loading
    return out


def pixel_timings(sizes=(512, 1024), k: int = 4, repeat: int = 3) -> dict:
    """The conformance check, the metric and the evidence page on synthetic k-key results at
    each side: seconds for the k answers (the best of `repeat`), and the page's bytes."""
    import numpy as np

    from attribcheck.audit.auditor import Auditor
    from attribcheck.audit.conformance import conformance
    from attribcheck.audit.run import SuspectResult, audit_entry
    from attribcheck.evidence.write import encode_answers, write_page
    from attribcheck.keys.keyset import Key, KeySet
    from attribcheck.manifest import Manifest
    from attribcheck.models.spec import SuspectSpec
    from attribcheck.metrics.distance import DISTANCES, get_distance
    from attribcheck.models.protocol import QueryProtocol

    def best(fn):
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    rng = np.random.default_rng(0)
    out = {}
    for side in sizes:
        keys = [rng.random((side, side, 3), dtype=np.float32) for _ in range(k)]
        answers = [np.clip(x + rng.normal(0, 0.05, x.shape).astype(np.float32), 0, 1) for x in keys]
        row = {"conformance_s": best(lambda: conformance(answers, keys))}
        for metric in DISTANCES:
            d = get_distance(metric)
            row[f"{metric}_s"] = best(lambda: [d(a, b) for a, b in zip(answers, keys)])
        ks = KeySet([Key(f"k{i}", f"caption {i}", x, 0.0) for i, x in enumerate(keys)], "synthetic", 0.15,
                    {"name": "rms", "side": None}, QueryProtocol(height=side, width=side), [0])
        auditor = Auditor(ks)
        spec = SuspectSpec("suspect", None, "innocent")
        res = SuspectResult(spec, verdict=auditor.score("suspect", np.full(k, 0.1), [0] * k),
                            images={key.id: a for key, a in zip(ks.keys, answers)})
        manifest = Manifest(Path("synthetic.toml"), "synthetic", Path("source"), Path("keys"))  # never read
        with tempfile.TemporaryDirectory() as tmp:
            def page():
                entry = audit_entry(manifest, auditor, [res]).model_dump(exclude_unset=True)
                return write_page(tmp, [entry], {("synthetic", "suspect"): encode_answers(res.images)},
                                  keysets={"synthetic": ks})

            row["evidence_page_s"] = best(page)
            row["evidence_page_bytes"] = (Path(tmp) / "index.html").stat().st_size
        out[str(side)] = {"answers": k, **row}
    return out


def run(args, spawn=None) -> int:
    """`spawn(variant, plan)` runs one variant (default: a child process; tests run them in-process)."""
    from attribcheck.lab.realsize.build import build, parameters

    spawn = spawn or _spawn

    if args.full:
        for name, value in FULL.items():
            setattr(args, name, value)
    print(f"building (or finding) {args.preset} pipelines, seeds 0 and 1 ...", flush=True)
    t = time.perf_counter()
    source, suspect = (build(args.preset, s, args.cache_dir) for s in (0, 1))
    figures: dict = {"command": " ".join(["python -m attribcheck.bench realsize", *sys.argv[2:]]),
                     "preset": args.preset, "parameters": parameters(source), "build_or_find_s": time.perf_counter() - t,
                     "cpus": os.cpu_count()}
    variants = ["keys"] + [v for v in VARIANTS[1:] if v not in (args.skip or [])]  # the rest need the keys
    with tempfile.TemporaryDirectory(prefix="attribcheck-realsize-") as work:
        plan = Plan(str(source), str(suspect), work, keys=args.keys, seeds=args.seeds, steps=args.steps,
                    size=args.size, dtype=args.dtype, device=args.device, threads=args.threads, batch=args.batch,
                    captions=[f"{CAPTIONS[i % len(CAPTIONS)]}, #{i}" for i in range(args.keys)])
        figures["plan"] = {k: v for k, v in asdict(plan).items() if k not in ("source", "suspect", "work", "captions")}
        for v in variants:
            r = figures[v] = spawn(v, plan)
            extra = "".join(f", {k} {r[k]:.2f} s" for k in ("s_per_image",) if k in r)
            print(f"{v:18s} {r.get('seconds', r.get('generate_s', 0)):8.1f} s, peak RSS "
                  f"{r['peak_rss_bytes'] / 2 ** 30:.2f} GiB{extra}", flush=True)
    figures.update(_summary(figures, plan))
    if not args.no_pixels:
        figures["pixels"] = pixel_timings()
        for side, row in figures["pixels"].items():
            print(f"{side}²: " + ", ".join(f"{k} {v:.4f}" if k.endswith("_s") else f"{k} {v}" for k, v in row.items()))
    for line in figures["summary"]:
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _summary(f: dict, plan: Plan) -> dict:
    """The figures the README quotes, and whether every variant measured the same distances."""
    lines, out = [], {}
    images = 2 * plan.keys * plan.seeds  # source and suspect
    if "audit" in f:
        out["audit_s_per_image"] = f["audit"]["seconds"] / images
        lines.append(f"audit (no cache): {out['audit_s_per_image']:.2f} s per image at {plan.size}², "
                     f"{plan.steps} steps, {plan.dtype} on {plan.device}, {plan.threads} thread(s)")
    if "audit" in f and "loop" in f:
        out["ratio_audit_to_loop"] = f["audit"]["seconds"] / f["loop"]["seconds"]
        lines.append(f"audit / hand-written loop: {out['ratio_audit_to_loop']:.3f} "
                     f"({f['audit']['seconds']:.1f} s against {f['loop']['seconds']:.1f} s)")
    if "audit-cold" in f and f["audit-cold"].get("cache_entries"):
        c = f["audit-cold"]
        out["cache_bytes_per_answer"] = c["cache_bytes"] / c["cache_entries"]
        lines.append(f"cache: {c['cache_entries']} answers, {out['cache_bytes_per_answer'] / 2 ** 20:.2f} MiB each")
    peaks = {v: f[v]["peak_rss_bytes"] for v in VARIANTS if v in f}
    if peaks:
        out["peak_rss_max_bytes"] = max(peaks.values())
        lines.append(f"peak RSS: {max(peaks.values()) / 2 ** 30:.2f} GiB ({max(peaks, key=peaks.get)})")
    seen = {v: {n: r["distances"] for n, r in f[v]["rows"].items()} for v in VARIANTS if v in f and "rows" in f[v]}
    full = {v: d for v, d in seen.items() if not v.endswith("early")}
    out["same_distances"] = len({json.dumps(d, sort_keys=True) for d in full.values()}) <= 1
    if "loop" in f and "audit" in f:
        out["loop_agrees"] = all(abs(a - b) < 1e-4 for n in ("source", "suspect")
                                 for a, b in zip(f["loop"]["distances"][n], seen["audit"][n]))
    verdicts = {v: {n: r["verdict"] for n, r in f[v]["rows"].items()} for v in seen}
    out["same_verdicts"] = len({json.dumps(v, sort_keys=True) for v in verdicts.values()}) <= 1
    lines.append(f"distances {'identical' if out['same_distances'] else 'DIFFER'} across full audits; verdicts "
                 f"{'identical' if out['same_verdicts'] else 'DIFFER'} (cache on/off, early stopping on/off)"
                 + ("" if "loop_agrees" not in out else
                    f"; hand loop {'agrees' if out['loop_agrees'] else 'DIFFERS'}"))
    out["summary"] = lines
    return out


if __name__ == "__main__":  # a child: one variant, its figures as the last line of stdout
    _plan = Plan(**json.loads(sys.argv[2]))
    print(json.dumps(child(sys.argv[1], _plan)))
