import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attribcheck.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    inst = sub.add_parser("instance", help="mean conf per rho for each key strategy; innocents' verdicts")
    inst.add_argument("--world", action="append", help="a world folder (repeatable); default: every shipped one built")
    inst.add_argument("--json", help="write results here")
    inst.add_argument("--k", type=int, default=30)
    inst.add_argument("--alpha", type=float, default=0.01)
    inst.add_argument("--figure", help="write a PNG of keys beside source and suspect outputs")
    inst.add_argument("--cache-dir", help="generation cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    inst.add_argument("--no-cache", action="store_true", help="generate everything afresh")
    inst.add_argument("--shadows", action="store_true",
                      help="bound p0 with the world's innocent shadows too (those `shadows build` finished)")
    inst.add_argument("--shadow-cache", help="where the shadows are (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    paper = sub.add_parser("paper", help="Figures 6 and 7, Tables 1 and 2 on the tiny world (builds shadows)")
    paper.add_argument("--out", required=True, help="folder for results.json and the PNG plots")
    paper.add_argument("--world", default="fixtures/world")
    paper.add_argument("--cache", help="shadow cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    paper.add_argument("--workers", type=int, default=2, help="shadow models trained at once (default 2)")
    paper.add_argument("--shadow-config", help="a ShadowConfig JSON file (default: M = 10 per class + 2 overlap); "
                                               "a smaller per_class reuses the first shadows of a larger build")
    paper.add_argument("--no-watermark", action="store_true",
                       help="skip Baseline 1 (its four watermark infringers are not trained; no watermark row)")
    robust = sub.add_parser("robust", help="conf and verdicts under JPEG, resizes, crops and other samplers")
    robust.add_argument("--manifest", default="suites/emoji.toml")
    robust.add_argument("--json", help="write results here")
    robust.add_argument("--suspect", action="append", help="only this suspect of the manifest (repeatable)")
    robust.add_argument("--cache-dir", help="generation cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    robust.add_argument("--no-cache", action="store_true", help="generate everything afresh")
    robust.add_argument("--shadows", action="store_true",
                        help="measure a declared postprocess's null on the world's innocent shadows too")
    robust.add_argument("--shadow-cache", help="where the shadows are (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    speed = sub.add_parser("speed", help="cache (cold vs warm), -n 2 vs serial, audit vs a hand-written loop, "
                                         "queries saved by early stopping: ratios measured in one run")
    speed.add_argument("--suites", default="suites/", help="what `pytest` runs, cold then warm")
    speed.add_argument("--manifest", default="suites/emoji.toml", help="for the overhead and early-stopping figures")
    speed.add_argument("--suspect", help="the suspect timed against the hand-written loop (default: the first)")
    speed.add_argument("--threads", type=int, default=1, help="torch threads in every process (default 1)")
    speed.add_argument("--workers", type=int, default=2, help="xdist workers for the parallel run (1: skip it)")
    speed.add_argument("--json", help="write the figures here")
    rs = sub.add_parser("realsize", help="the audit at SD-1.5 shapes (random weights) against a hand-written loop")
    rs.add_argument("--preset", default="sd15", help="sd15, sdxl (1024², 3.5 G parameters), or tiny / tiny-xl (seconds; what the tests run)")
    rs.add_argument("--cache-dir", help="where the pipelines are built (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    for name, default in (("keys", 2), ("seeds", 1), ("steps", 2), ("size", 512), ("threads", 1)):
        rs.add_argument(f"--{name}", type=int, default=default)
    rs.add_argument("--batch", type=int, help="images per pipeline call (default: all of a model's queries)")
    rs.add_argument("--dtype", default="float32")
    rs.add_argument("--device", default="cpu")
    rs.add_argument("--full", action="store_true", help="the GPU protocol: 30 keys x 4 seeds x 50 steps, fp16, cuda")
    rs.add_argument("--skip", action="append", help="a variant not to run (repeatable)")
    rs.add_argument("--no-pixels", action="store_true", help="skip the 512²/1024² metric and evidence timings")
    rs.add_argument("--json", help="write the figures here")
    ev = sub.add_parser("evade", help="verdicts on infringers (and innocents) that change the model: washing, "
                                      "int8/fp16/bf16, LoRA, distillation, merges")
    ev.add_argument("--world", default="fixtures/world-partial")
    ev.add_argument("--manifest", default="suites/emoji-web.toml")
    ev.add_argument("--json", help="write results here (after every point)")
    ev.add_argument("--cache-dir", help="where built models go (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck, /evade)")
    ev.add_argument("--only", action="append", help="only this evasion (none, cast, int8, merge, wash, lora, distill)")
    ev.add_argument("--budget-steps", type=int, help="training steps this run may spend on unbuilt points (0: audit what is built)")
    ev.add_argument("--build-only", action="store_true", help="build the points, audit nothing")
    null = sub.add_parser("null", help="the binomial null checked on many cheap innocent models (built, resumable)")
    null.add_argument("--world", default="fixtures/world-partial")
    null.add_argument("--strategy", default="detection", help="whose keys (default: the suite's)")
    null.add_argument("--count", type=int, help="cheap innocents (default: InnocentConfig's, 100)")
    null.add_argument("--steps", type=int, help="fine-tuning steps per cheap innocent (default: InnocentConfig's)")
    null.add_argument("--workers", type=int, default=2)
    null.add_argument("--no-build", action="store_true", help="analyse only the innocents already built")
    null.add_argument("--alpha", type=float, default=0.01)
    null.add_argument("--json", help="write results here")
    null.add_argument("--figure", help="write the p-value QQ plot (PNG) here")
    null.add_argument("--cache-dir", help="generation cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    null.add_argument("--shadow-cache", help="where the innocents are built (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    th = sub.add_parser("threads", help="seconds per image at 1, cores/2 and all cores' torch threads, on this "
                                        "machine as loaded now (what the default thread count should be)")
    th.add_argument("--images", type=int, default=8, help="timed images per count, tiny model (default 8)")
    th.add_argument("--realsize", help="an SD-1.5-shaped pipeline folder (attribcheck realsize build) to time too")
    th.add_argument("--real-steps", type=int, default=2, help="DDIM steps at 512² (default 2)")
    th.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)
    import importlib

    # each bench is a module of this package with a run(args); imported only when asked for
    return importlib.import_module(f"attribcheck.lab.bench.{args.bench}").run(args)


if __name__ == "__main__":
    sys.exit(main())
