"""`python -m attribcheck.bench robust`: does a verdict survive a suspect that disguises its
outputs? Per transformation (JPEG, resizes, a 10% crop, another scheduler and step count,
another guidance scale), each suspect's conf and verdict, with plain RMS and with the
crop-aligned RMS (metrics/distance.py), beside the untouched audit.

Image transformations are applied to the suspect's answers (what an evader behind an API
would do); sampler changes regenerate them. The key set, delta_0 and p0 stay the owner's.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from attribcheck import images
from attribcheck.audit.auditor import Auditor
from attribcheck.audit.run import auditor_for
from attribcheck.manifest import Manifest
from attribcheck.metrics.distance import get_distance


def jpeg(quality: int):
    def f(x: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        images.to_pil(x).save(buf, format="JPEG", quality=quality)
        return images.to_array(Image.open(io.BytesIO(buf.getvalue())))
    return f


def resize_up(x: np.ndarray) -> np.ndarray:  # an API serving larger images
    return images.resize_to(x, 2 * x.shape[0], 2 * x.shape[1])


def resize_down_up(x: np.ndarray) -> np.ndarray:  # a round trip through half the resolution
    h, w = x.shape[:2]
    return images.resize_to(images.resize_to(x, h // 2, w // 2), h, w)


def crop(share: float):
    def f(x: np.ndarray) -> np.ndarray:  # cut share/2 off each border, scale back to size
        h, w = x.shape[:2]
        dh, dw = round(h * share / 2), round(w * share / 2)
        return images.resize_to(x[dh:h - dh, dw:w - dw], h, w)
    return f


TRANSFORMS = {"none": lambda x: x, "jpeg90": jpeg(90), "jpeg75": jpeg(75), "jpeg50": jpeg(50),
              "resize-up-2x": resize_up, "resize-down-up": resize_down_up, "crop10": crop(0.1)}
SAMPLERS = {"dpm++-25": {"scheduler": "DPMSolverMultistepScheduler", "steps": 25},
            "ddim-20": {"steps": 20}, "guidance-1.5": {"guidance_scale": 1.5}}
METRICS = ("rms", "aligned_rms")


def grid(auditor: Auditor, spec, protocol) -> list[list[np.ndarray]]:
    """The suspect's answers: per key, one image per query seed."""
    from attribcheck.manifest import open_generator

    ks = auditor.keyset
    gen = open_generator(spec, protocol)
    seeds = list(ks.query_seeds)
    flat = gen.generate([c for c in ks.captions for _ in seeds], [s for _ in ks.captions for s in seeds])
    return [flat[i * len(seeds):(i + 1) * len(seeds)] for i in range(len(ks))]


def score(auditor: Auditor, answers, transform, metric: str):
    d = get_distance(metric)
    r = np.array([min(d(transform(o), t) for o in outs) for outs, t in zip(answers, auditor.keyset.images)])
    return auditor.score("suspect", r)


def run(args) -> int:
    t0 = time.perf_counter()
    manifest = Manifest.load(args.manifest)
    auditor = auditor_for(manifest)
    ks = auditor.keyset
    rows = []
    for spec in [s for s in manifest.suspects if not args.suspect or s.name in args.suspect]:
        variants = {"": grid(auditor, spec, ks.protocol)}
        for name, change in SAMPLERS.items():
            variants[name] = grid(auditor, spec, ks.protocol.model_copy(update=change))
        for variant, answers in variants.items():
            transforms = TRANSFORMS if not variant else {"none": TRANSFORMS["none"]}
            for tname, f in transforms.items():
                for metric in METRICS:
                    v = score(auditor, answers, f, metric)
                    rows.append({"suspect": spec.name, "expect": spec.expect, "change": variant or tname,
                                 "metric": metric, "conf": v.conf, "verdict": v.verdict, "p_value": v.p_value})
        print(f"{spec.name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = summarise(rows)
    out = {"manifest": str(manifest.path), "k": len(ks), "delta_0": auditor.delta_0, "p0": auditor.p0,
           "rows": rows, "summary": summary, "wall_seconds": round(time.perf_counter() - t0, 1)}
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=False))
    return 0


def summarise(rows: list[dict]) -> dict:
    """Per change and metric: infringers' mean conf loss against the untouched audit, how many
    infringing verdicts flip to clean, and how many innocents become attributed."""
    base = {(r["suspect"], r["metric"]): r for r in rows if r["change"] == "none"}
    out: dict = {}
    for r in rows:
        key = f"{r['change']}/{r['metric']}"
        s = out.setdefault(key, {"conf_loss": [], "flips_to_clean": 0, "innocents_attributed": 0})
        b = base[(r["suspect"], r["metric"])]
        if r["expect"] == "infringing":
            s["conf_loss"].append(b["conf"] - r["conf"])
            s["flips_to_clean"] += int(r["verdict"] == "clean" and b["verdict"] != "clean")
        else:
            s["innocents_attributed"] += int(r["verdict"] == "attributed")
    for s in out.values():
        s["conf_loss"] = float(np.mean(s["conf_loss"])) if s["conf_loss"] else 0.0
    return out


def print_summary(summary: dict) -> None:
    print(f"{'change/metric':32s} {'mean conf loss':>14s} {'flips to clean':>15s} {'innocents attributed':>21s}")
    for key, s in summary.items():
        print(f"{key:32s} {s['conf_loss']:14.3f} {s['flips_to_clean']:15d} {s['innocents_attributed']:21d}")
