"""`python -m attribcheck.bench robust`: does a verdict survive a suspect that disguises its
outputs? Per transformation (JPEG, resizes, a 10% crop, another scheduler and step count,
another guidance scale), each suspect's conf and verdict, with plain RMS, the crop-aligned
RMS and the multi-scale RMS (metrics/distance.py), beside the untouched audit.

Image transformations are applied to the suspect's answers (what an evader behind an API
would do); sampler changes regenerate them. Each answer set is read three ways: against the
key set's untouched null (`verdict`); as the audit reads it, where answers blurrier than the
protocol are inconclusive (`verdict_audit`, audit/conformance.py); and with the change
declared as the suspect's postprocess (`verdict_declared`, audit/null_through.py: keys and
null seen through it, the null on the manifest's [[innocents]] and, with --shadows, the
world's innocent shadows; the key set's own metric only). delta_0 is
the key set's on its own metric; on any other metric it is re-calibrated (`calibrate`): a
more lenient metric brings innocents closer too, and the key set's delta_0 would then
accuse them. This reads the world's layout (fixtures/world/<dataset>/): the reference models
beside the source and the source's generations for the candidate prompts.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from attribcheck import images
from attribcheck.audit.auditor import Auditor
from attribcheck.audit.conformance import conformance
from attribcheck.audit.null_through import innocent_answers, through
from attribcheck.audit.postprocess import Postprocess
from attribcheck.audit.run import auditor_for
from attribcheck.errors import InputError
from attribcheck.keys.keyset import Key, KeySet
from attribcheck.manifest import Manifest
from attribcheck.models.spec import SuspectSpec, open_generator
from attribcheck.metrics.distance import get_distance
from attribcheck.models.generator import generate_grid


def resize_down_up_bicubic(x: np.ndarray) -> np.ndarray:  # the round trip with another resampler than the metric's
    h, w = x.shape[:2]
    small = images.to_pil(x).resize((w // 2, h // 2), Image.BICUBIC)
    return images.to_array(small.resize((w, h), Image.BICUBIC))


# each change as the suspect's declared postprocess would name it (audit/postprocess.py); the
# bicubic round trip has no such name: its audit with the change declared uses the bilinear one
STEPS = {"none": [], "jpeg90": ["jpeg:90"], "jpeg75": ["jpeg:75"], "jpeg50": ["jpeg:50"],
         "resize-up-2x": ["scale:2"], "resize-down-up": ["scale:0.5", "scale:2"],
         "resize-down-up-bicubic": ["scale:0.5", "scale:2"], "crop10": ["crop:0.1"]}
TRANSFORMS = {name: Postprocess.parse(steps) for name, steps in STEPS.items()}
TRANSFORMS["resize-down-up-bicubic"] = resize_down_up_bicubic
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


def innocent_models(manifest: Manifest, args) -> list[SuspectSpec]:
    """The innocent models a declared postprocess's null is measured on: the manifest's
    [[innocents]], and with --shadows the world's finished innocent shadows (held out from
    key selection, as [[innocents]] must be)."""
    specs = list(manifest.innocents)
    if getattr(args, "shadows", False):
        from attribcheck.lab.shadows.build import ShadowBuilder
        from attribcheck.lab.world.layout import is_done

        dataset = manifest.source.parent.parent
        builder = ShadowBuilder(dataset.parent, args.shadow_cache)
        specs += [SuspectSpec(f"shadow:{f.name}", f, "innocent") for f, label in builder.shadows(dataset.name)
                  if label == 0 and is_done(f)]
    return specs


def audited(auditor: Auditor, answers, transform, declared: Auditor | None = None) -> dict:
    """What the audit says of answers that went through `transform`: against the untouched null,
    with answers that depart from the protocol made inconclusive (audit/conformance.py); and,
    given `declared` (the auditor through the declared postprocess), with the change declared."""
    seen = [transform(o) for outs in answers for o in outs]
    per_key = [seen[i * len(answers[0]):(i + 1) * len(answers[0])] for i in range(len(answers))]
    d = best(auditor.distance, per_key, auditor.keyset.images)
    v = auditor.score("suspect", d)
    fit = conformance(seen, auditor.keyset.images, auditor.min_sharpness)
    row = {"conf": v.conf, "verdict": v.verdict, "p_value": v.p_value, "sharpness": fit.sharpness,
           "verdict_audit": "inconclusive" if fit.departs else v.verdict}
    if declared is not None:
        vd = declared.score("suspect", best(declared.distance, per_key, declared.keyset.images))
        fit_d = conformance(seen, declared.keyset.images, declared.min_sharpness)
        row.update(conf_declared=vd.conf, p0_declared=vd.p0, sharpness_declared=fit_d.sharpness,
                   verdict_declared="inconclusive" if fit_d.departs else vd.verdict)
    return row


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
    innocents = innocent_models(manifest, args)
    own = ks.distance["name"]
    answers_of = innocent_answers(auditors[own], innocents, cache=cache) if innocents else {}
    print(f"declared postprocess: null on {len(answers_of)} innocent models", flush=True)
    rows, declared = [], {}
    for spec in [s for s in manifest.suspects if not args.suspect or s.name in args.suspect]:
        variants = {"": grid(auditor, spec, ks.protocol, cache=cache)}
        for name, change in SAMPLERS.items():
            variants[name] = grid(auditor, spec, ks.protocol.model_copy(update=change), cache=cache)
        for variant, answers in variants.items():
            transforms = TRANSFORMS if not variant else {"none": TRANSFORMS["none"]}
            for tname, f in transforms.items():
                if answers_of and tname not in declared:  # once per change: the innocents' answers through it
                    declared[tname] = through(auditors[own], Postprocess.parse(STEPS[tname]), answers_of)
                for metric in METRICS:
                    row = audited(auditors[metric], answers, f, declared.get(tname) if metric == own else None)
                    rows.append({"suspect": spec.name, "expect": spec.expect, "change": variant or tname,
                                 "metric": metric, **row})
        print(f"{spec.name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    summary = summarise(rows)
    out = {"manifest": str(manifest.path), "k": len(ks), "delta_0": auditor.delta_0, "p0": auditor.p0,
           "innocents": sorted(answers_of), "p0_declared": {t: a.p0 for t, a in declared.items()},
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
    """Per change and metric: infringers' mean conf loss against the untouched audit and how
    many infringing verdicts flip to clean, against the untouched null; then how many
    infringers and innocents are attributed by the audit as it reads these answers (departing
    answers inconclusive) and with the change declared as the suspect's postprocess."""
    base = {(r["suspect"], r["metric"]): r for r in rows if r["change"] == "none"}
    out: dict = {}
    for r in rows:
        s = out.setdefault(f"{r['change']}/{r['metric']}", {
            "conf_loss": [], "flips_to_clean": 0, "innocents_attributed": 0, "infringers": 0, "innocents": 0,
            "audit": {"infringers_attributed": 0, "innocents_attributed": 0},
            "declared": {"conf_loss": [], "infringers_attributed": 0, "innocents_attributed": 0,
                         "flips_to_clean": 0}})
        b = base[(r["suspect"], r["metric"])]
        who = "infringers" if r["expect"] == "infringing" else "innocents"
        s[who] += 1
        s["audit"][f"{who}_attributed"] += int(r["verdict_audit"] == "attributed")
        if r["expect"] == "infringing":
            s["conf_loss"].append(b["conf"] - r["conf"])
            s["flips_to_clean"] += int(r["verdict"] == "clean" and b["verdict"] != "clean")
        else:
            s["innocents_attributed"] += int(r["verdict"] == "attributed")
        if "verdict_declared" in r:
            dec = s["declared"]
            dec[f"{who}_attributed"] += int(r["verdict_declared"] == "attributed")
            if r["expect"] == "infringing":
                dec["conf_loss"].append(b["conf"] - r["conf_declared"])
                dec["flips_to_clean"] += int(r["verdict_declared"] == "clean" and b["verdict"] != "clean")
    for s in out.values():
        s["conf_loss"] = float(np.mean(s["conf_loss"])) if s["conf_loss"] else 0.0
        dec = s["declared"]
        if dec["conf_loss"]:
            dec["conf_loss"] = float(np.mean(dec["conf_loss"]))
        else:
            s["declared"] = None  # not measured (another metric, or no innocent models)
    return out


def print_summary(summary: dict) -> None:
    print(f"{'change/metric':30s} {'conf loss':>9s} {'to clean':>8s} {'inn. attr':>9s} | {'audit: inf/inn attr':>19s}"
          f" | {'declared: loss':>14s} {'to clean':>8s} {'inf/inn attr':>12s}")
    for key, s in summary.items():
        a, d = s["audit"], s["declared"]
        line = (f"{key:30s} {s['conf_loss']:9.3f} {s['flips_to_clean']:8d} {s['innocents_attributed']:9d} | "
                f"{a['infringers_attributed']:>8d}/{s['infringers']:<2d} {a['innocents_attributed']:>4d}/{s['innocents']:<3d} |")
        if d is not None:
            line += (f" {d['conf_loss']:14.3f} {d['flips_to_clean']:8d} "
                     f"{d['infringers_attributed']:>6d}/{s['infringers']:<2d}{d['innocents_attributed']:>2d}/{s['innocents']}")
        print(line)
