"""The `attribcheck` command line: world build, shadows build, keys select, audit."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _world_build(args) -> int:
    from attribcheck.lab.world.build import WorldBuilder
    from attribcheck.lab.world.config import WorldConfig

    from attribcheck.lab.world.manifests import write_manifest

    cfg = WorldConfig.load(args.config) if args.config else WorldConfig()
    builder = WorldBuilder(args.out, cfg)
    builder.build(args.dataset or None)
    if args.suites:
        for d in args.dataset or cfg.datasets:
            if d in cfg.suite_keys:
                print("wrote", write_manifest(builder.layout, cfg, d, Path(args.suites) / f"{d}.toml",
                                              cfg.suite_keys[d]))
    return 0


def _shadows_build(args) -> int:
    from attribcheck.lab.shadows.build import ShadowBuilder
    from attribcheck.lab.shadows.config import ShadowConfig

    cfg = ShadowConfig.load(args.config) if args.config else ShadowConfig()
    root = ShadowBuilder(args.world, args.cache, cfg).build(args.dataset or None, watermark=args.watermark,
                                                           workers=args.workers)
    print("shadows in", root)
    return 0


def _shadows_fit(args) -> int:
    from attribcheck.statistical.fit import FILENAME, fit_discriminator

    shadows = [(Path(p), 1) for p in args.infringing] + [(Path(p), 0) for p in args.innocent]
    keys = args.keys
    if args.dataset:  # the world's key set and the shadows `shadows build` made for it
        from attribcheck.lab.shadows.build import ShadowBuilder

        builder = ShadowBuilder(args.world, args.cache)
        keys = keys or builder.world.layout.keys(args.dataset, args.strategy)
        shadows += builder.shadows(args.dataset)
    if not keys or not shadows:
        print("give --keys with --infringing/--innocent shadow folders, or --dataset for the world's", file=sys.stderr)
        return 2
    est = fit_discriminator(keys, shadows)
    print(f"discriminator on {len(shadows)} shadows, leave-one-out accuracy "
          f"{est.metadata_['cv_accuracy']:.2f} -> {Path(keys) / FILENAME}")
    return 0


def _keys_select(args) -> int:
    from attribcheck.data import CaptionDataset
    from attribcheck.keys.select import SelectionContext, get_selector
    from attribcheck.metrics.distance import get_distance
    from attribcheck.models.diffusers_generator import DiffusersGenerator
    from attribcheck.models.generator import SamplerConfig

    sampler = SamplerConfig.load(args.sampler) if args.sampler else SamplerConfig()
    open_ = lambda p: DiffusersGenerator.from_path(p, sampler)  # noqa: E731
    ctx = SelectionContext(
        source=open_(args.source), references={Path(p).name: open_(p) for p in args.reference},
        calibration={Path(p).name: open_(p) for p in args.calibration}, sampler=sampler,
        distance=get_distance(args.metric), delta_0=args.delta_0, query_seeds=list(range(args.query_seeds)))
    data = CaptionDataset.from_folder(args.data)
    pool = data if args.strategy != "generation" or not args.prompts else Path(args.prompts).read_text().splitlines()
    ks = get_selector(args.strategy, k=args.k).select(ctx, pool)
    ks.save(args.out)
    print(f"{len(ks)} {args.strategy} keys of {ks.candidates} candidates -> {args.out}")
    return 0 if len(ks) else 1


def _audit(args) -> int:
    from rich.console import Console

    from attribcheck.audit.run import audit_manifest
    from attribcheck.manifest import Manifest

    manifest = Manifest.load(args.manifest)
    if args.alpha is not None:
        manifest.alpha = args.alpha
    results = audit_manifest(manifest)
    statistical = None
    if manifest.statistical:  # the key set has a discriminator: the statistical level too
        from attribcheck.keys.keyset import KeySet
        from attribcheck.statistical.fit import StatisticalAuditor

        statistical = StatisticalAuditor.for_keyset(manifest.keys, KeySet.load(manifest.keys),
                                                    manifest.discriminator, threshold=manifest.threshold)
    console = Console()
    rows = []
    for spec, v in results:
        console.print(v.summary() + f" [expected {spec.expect}]")
        row = {**v.to_dict(with_distances=args.distances), "expect": spec.expect}
        if statistical:
            sv = statistical.verdict(v.name, v.distances)
            console.print("  " + sv.summary())
            row["statistical"] = sv.to_dict()
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"manifest": str(manifest.path), "suspects": rows}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attribcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    world = sub.add_parser("world", help="the tiny world of models").add_subparsers(dest="action", required=True)
    wb = world.add_parser("build", help="build (or resume building) the tiny world")
    wb.add_argument("--out", default="fixtures/world")
    wb.add_argument("--config", help="a WorldConfig JSON file (default: the shipped recipe)")
    wb.add_argument("--dataset", action="append", help="build only this dataset (repeatable)")
    wb.add_argument("--suites", default="suites", help="write audit manifests here ('' for none)")
    wb.set_defaults(func=_world_build)

    shadows = sub.add_parser("shadows", help="shadow models for the discriminator").add_subparsers(
        dest="action", required=True)
    sb = shadows.add_parser("build", help="build (or resume building) shadow models into a cache")
    sb.add_argument("--world", default="fixtures/world")
    sb.add_argument("--cache", help="cache folder (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    sb.add_argument("--config", help="a ShadowConfig JSON file (default: M=6 per class + 2 overlap innocents, the world's N)")
    sb.add_argument("--dataset", action="append", help="build only this dataset (repeatable)")
    sb.add_argument("--watermark", action="store_true",
                    help="also build Baseline 1's infringers, trained on watermarked source images")
    sb.add_argument("--workers", type=int, default=1, help="models trained at once (CPU: one per two cores or so)")
    sb.set_defaults(func=_shadows_build)

    sf = shadows.add_parser("fit", help="fit a key set's discriminator on shadows; saved beside the key set")
    sf.add_argument("--keys", help="key set folder (default with --dataset: the world's)")
    sf.add_argument("--infringing", action="append", default=[], help="an infringing shadow's folder")
    sf.add_argument("--innocent", action="append", default=[], help="an innocent shadow's folder")
    sf.add_argument("--dataset", help="use the world's shadows of this dataset (from `shadows build`)")
    sf.add_argument("--strategy", default="generation", help="with --dataset: which key set")
    sf.add_argument("--world", default="fixtures/world")
    sf.add_argument("--cache", help="the shadow cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    sf.set_defaults(func=_shadows_fit)

    keys = sub.add_parser("keys", help="key samples").add_subparsers(dest="action", required=True)
    ks = keys.add_parser("select", help="select key samples for a source model")
    ks.add_argument("--source", required=True, help="source pipeline folder")
    ks.add_argument("--data", required=True, help="the source's fine-tuning set (folder with a manifest)")
    ks.add_argument("--reference", action="append", default=[], help="reference model (filters keys)")
    ks.add_argument("--calibration", action="append", default=[], help="held-out reference (estimates p0)")
    ks.add_argument("--strategy", choices=["detection", "generation", "random"], default="generation")
    ks.add_argument("--prompts", help="generation strategy: a text file of candidate prompts")
    ks.add_argument("--k", type=int, default=30)
    ks.add_argument("--delta-0", dest="delta_0", type=float, default=0.15)
    ks.add_argument("--metric", default="rms")
    ks.add_argument("--query-seeds", type=int, default=4)
    ks.add_argument("--sampler", help="a SamplerConfig JSON file")
    ks.add_argument("--out", required=True)
    ks.set_defaults(func=_keys_select)

    au = sub.add_parser("audit", help="audit the suspects of a manifest")
    au.add_argument("--manifest", required=True)
    au.add_argument("--json", help="write the verdicts here")
    au.add_argument("--alpha", type=float)
    au.add_argument("--distances", action="store_true", help="include per-key distances in the JSON")
    au.set_defaults(func=_audit)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
