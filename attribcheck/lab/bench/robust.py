"""`python -m attribcheck.bench robust`: does a verdict survive a suspect that disguises its
outputs? Per transformation (JPEG, resizes, a 10% crop, another scheduler and step count,
another guidance scale), each suspect's conf and verdict, with plain RMS, the crop-aligned
RMS and the multi-scale RMS (metrics/distance.py), beside the untouched audit.

Image transformations are applied to the suspect's answers (what an evader behind an API
would do); sampler changes regenerate them. The key set and p0 stay the owner's. delta_0 is
the key set's on its own metric; on any other metric it is re-calibrated (`calibrate`): a
more lenient metric brings innocents closer too, and the key set's delta_0 would then
accuse them. This reads the world's layout (fixtures/world/<dataset>/): the reference models
beside the source and the source's generations for the candidate prompts.
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
from attribcheck.errors import InputError
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.manifest import Manifest, SuspectSpec, open_generator
from attribcheck.metrics.distance import get_distance
from attribcheck.models.generator import generate_grid


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


def resize_down_up_bicubic(x: np.ndarray) -> np.ndarray:  # the round trip with another resampler than the metric's
    h, w = x.shape[:2]
    small = images.to_pil(x).resize((w // 2, h // 2), Image.BICUBIC)
    return images.to_array(small.resize((w, h), Image.BICUBIC))


def crop(share: float):
    def f(x: np.ndarray) -> np.ndarray:  # cut share/2 off each border, scale back to size
        h, w = x.shape[:2]
        dh, dw = round(h * share / 2), round(w * share / 2)
        return images.resize_to(x[dh:h - dh, dw:w - dw], h, w)
    return f


TRANSFORMS = {"none": lambda x: x, "jpeg90": jpeg(90), "jpeg75": jpeg(75), "jpeg50": jpeg(50),
              "resize-up-2x": resize_up, "resize-down-up": resize_down_up,
              "resize-down-up-bicubic": resize_down_up_bicubic, "crop10": crop(0.1)}
SAMPLERS = {"dpm++-25": {"scheduler": "DPMSolverMultistepScheduler", "steps": 25},
            "ddim-20": {"steps": 20}, "guidance-1.5": {"guidance_scale": 1.5}}
METRICS = ("rms", "aligned_rms", "multiscale_rms")
# References trained on the owner's data: they reproduce keys by design, so they say nothing
# about what an innocent model does (selection uses them as filters only).
TWINS = ("ref-twin",)


def grid(auditor: Auditor, spec, protocol, captions=None, cache=None) -> list[np.ndarray]:
    """The suspect's answers: per caption (default: the keys'), an array of one image per query
    seed; through the generation cache when one is given (the untouched answers are the audit's)."""
    captions = auditor.keyset.captions if captions is None else captions
    return list(generate_grid(open_generator(spec, protocol, cache=cache), captions, auditor.keyset.query_seeds))


def best(distance, answers, targets, transform=lambda x: x) -> np.ndarray:
    """Per target: the smallest distance of any of its answers (the audit's best-of-seeds)."""
    return np.array([min(distance(transform(o), t) for o in outs) for outs, t in zip(answers, targets)])


def null_under(auditor: Auditor, answers: dict, transform) -> float:
    """p0 as the suspect's answers arrive: the innocent references' answers to the keys passed
    through the same transformation, bounded as the audit bounds p0, and never below the key
    set's own p0. Blurring pulls every answer toward the average picture, innocents' too, so a
    null measured on untouched answers accuses a blurred innocent. (The selection references
    were chosen to miss the keys untouched, so this bound is itself optimistic.)"""
    from attribcheck.audit.score import p0_upper

    ks = auditor.keyset
    hits = sum(int(np.sum(best(auditor.distance, keys, ks.images, transform) < auditor.delta_0))
               for _, keys in answers.values())
    return max(auditor.p0, p0_upper(hits, len(answers) * len(ks), len(ks)))


def reference_answers(manifest: Manifest, auditor: Auditor, cache=None) -> tuple[list, dict, dict]:
    """The world's candidate prompts with the source's image for each, and every innocent
    reference's answers to those prompts and to the keys' captions."""
    ks = auditor.keyset
    world = manifest.source.parent.parent
    path = world / "source_generations.npz"
    if not path.exists():
        raise InputError("calibrating delta_0 for another metric needs the world's source generations", path)
    data = np.load(path, allow_pickle=False)
    prompts, targets = list(data["prompts"]), list(data["images"][:, 0].astype(np.float32) / 255)
    names = [n for n in ks.reference_roles if n not in TWINS]
    captions = list(dict.fromkeys(prompts + ks.captions))
    answers = {}
    for n in names:
        spec = SuspectSpec(n, manifest.source.parent / n, "innocent")
        by_caption = dict(zip(captions, grid(auditor, spec, ks.protocol, captions, cache)))
        answers[n] = ([by_caption[c] for c in prompts], [by_caption[c] for c in ks.captions])
    return targets, answers, {"prompts": len(prompts), "references": names}


def calibrate(auditor: Auditor, metric: str, targets, answers) -> tuple[Auditor, dict]:
    """An Auditor on `metric` at the key set's operating point: delta_0 such that the innocent
    references reproduce as many candidates (their best-of-seeds distance to the source's image
    below it) as they do at the key set's delta_0 on its own metric -- thresholds.py's quantile
    rule, carried over. The calibration references' distances on the keys are re-measured
    (they set the innocent level); p0 stays the key set's, being the rate at that same point."""
    ks, m = auditor.keyset, get_distance(metric)
    own = get_distance(ks.distance)
    if m == own:
        return auditor, {"delta_0": auditor.delta_0, "calibrated": "the key set's"}
    r_own = np.concatenate([best(own, pool, targets) for pool, _ in answers.values()])
    r_m = np.concatenate([best(m, pool, targets) for pool, _ in answers.values()])
    hits = int(np.sum(r_own < auditor.delta_0))
    delta_0 = float(np.sort(r_m)[min(hits, len(r_m) - 1)])  # `hits` of them lie below it (ties aside)
    on_keys = {n: best(m, keys, ks.images) for n, (_, keys) in answers.items()}
    keys = [Key(k.id, k.caption, k.image, k.r_source,
                {**k.r_references, **{n: float(d[i]) for n, d in on_keys.items()}})
            for i, k in enumerate(ks.keys)]
    ks_m = KeySet(keys, ks.strategy, delta_0, m.to_dict(), ks.protocol, ks.query_seeds, ks.source,
                  dict(ks.reference_roles), ks.candidates, dict(ks.selection))
    info = {"delta_0": delta_0, "calibrated": f"{hits} of {len(r_m)} reference answers reproduce a "
            f"candidate at the key set's delta_0 on {own.name}, as at this one",
            "reference_key_hits": {n: int(np.sum(d < delta_0)) for n, d in on_keys.items()},
            # how coarse the tail is that delta_0 is read from
            "reference_quantiles": {f"{q:g}": [float(np.quantile(r_own, q)), float(np.quantile(r_m, q))]
                                    for q in (0.01, 0.05, 0.5)}}
    return Auditor(ks_m, alpha=auditor.alpha, delta_0=delta_0, p0=auditor.p0), info


def run(args) -> int:
    from attribcheck.cache import GenerationCache

    t0 = time.perf_counter()
    cache = None if args.no_cache else GenerationCache(args.cache_dir)
    manifest = Manifest.load(args.manifest)
    auditor = auditor_for(manifest)
    ks = auditor.keyset
    targets, references, pool = reference_answers(manifest, auditor, cache)
    auditors, calibration = {}, {}
    for metric in METRICS:
        auditors[metric], calibration[metric] = calibrate(auditor, metric, targets, references)
        print(f"{metric}: delta_0 {calibration[metric]['delta_0']:.4f} "
              f"(innocent level {auditors[metric].innocent_level:.3f})", flush=True)
    rows, nulls = [], {}
    for spec in [s for s in manifest.suspects if not args.suspect or s.name in args.suspect]:
        variants = {"": grid(auditor, spec, ks.protocol, cache=cache)}
        for name, change in SAMPLERS.items():
            variants[name] = grid(auditor, spec, ks.protocol.model_copy(update=change), cache=cache)
        for variant, answers in variants.items():
            transforms = TRANSFORMS if not variant else {"none": TRANSFORMS["none"]}
            for tname, f in transforms.items():
                for metric in METRICS:
                    a = auditors[metric]
                    d = best(a.distance, answers, a.keyset.images, f)  # once: both nulls score these
                    v = a.score("suspect", d)
                    # the same answers against a null measured through the same transformation
                    # (the suspect's answers do not enter it: once per change and metric)
                    if (tname, metric) not in nulls:
                        nulls[(tname, metric)] = null_under(a, references, f)
                    p0_t = nulls[(tname, metric)]
                    v_t = Auditor(a.keyset, alpha=a.alpha, delta_0=a.delta_0, p0=p0_t).score("suspect", d)
                    rows.append({"suspect": spec.name, "expect": spec.expect, "change": variant or tname,
                                 "metric": metric, "conf": v.conf, "verdict": v.verdict, "p_value": v.p_value,
                                 "p0_transformed": p0_t, "verdict_transformed_null": v_t.verdict})
        print(f"{spec.name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = summarise(rows)
    out = {"manifest": str(manifest.path), "k": len(ks), "delta_0": auditor.delta_0, "p0": auditor.p0,
           "calibration": {"pool": pool, **calibration}, "rows": rows, "summary": summary,
           "wall_seconds": round(time.perf_counter() - t0, 1)}
    print_summary(summary)
    for r in rows:  # the innocents, by name: the question a lenient metric must answer
        if r["expect"] == "innocent" and r["verdict"] != "clean":
            print(f"innocent {r['suspect']}: {r['change']}/{r['metric']} conf {r['conf']:.3f} {r['verdict']}")
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
        s = out.setdefault(key, {"conf_loss": [], "flips_to_clean": 0, "innocents_attributed": 0,
                                 "innocents_attributed_transformed_null": 0})
        b = base[(r["suspect"], r["metric"])]
        if r["expect"] == "infringing":
            s["conf_loss"].append(b["conf"] - r["conf"])
            s["flips_to_clean"] += int(r["verdict"] == "clean" and b["verdict"] != "clean")
        else:
            s["innocents_attributed"] += int(r["verdict"] == "attributed")
            s["innocents_attributed_transformed_null"] += int(r.get("verdict_transformed_null") == "attributed")
    for s in out.values():
        s["conf_loss"] = float(np.mean(s["conf_loss"])) if s["conf_loss"] else 0.0
    return out


def print_summary(summary: dict) -> None:
    print(f"{'change/metric':32s} {'mean conf loss':>14s} {'flips to clean':>15s} {'innocents attributed':>21s} "
          f"{'(null through the change)':>26s}")
    for key, s in summary.items():
        print(f"{key:32s} {s['conf_loss']:14.3f} {s['flips_to_clean']:15d} {s['innocents_attributed']:21d} "
              f"{s['innocents_attributed_transformed_null']:26d}")
