"""The `attribcheck` command line: keys select, audit, world build."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _world_build(args) -> int:
    from attribcheck.world.build import WorldBuilder
    from attribcheck.world.config import WorldConfig

    from attribcheck.world.manifests import write_manifest

    cfg = WorldConfig.load(args.config) if args.config else WorldConfig()
    builder = WorldBuilder(args.out, cfg)
    builder.build(args.dataset or None)
    if args.suites:
        for d in args.dataset or cfg.datasets:
            if d in cfg.suite_keys:
                print("wrote", write_manifest(builder.layout, cfg, d, Path(args.suites) / f"{d}.toml",
                                              cfg.suite_keys[d]))
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
    console = Console()
    rows = []
    for spec, v in results:
        console.print(v.summary() + f" [expected {spec.expect}]")
        rows.append({**v.to_dict(with_distances=args.distances), "expect": spec.expect})
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
