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
    paper = sub.add_parser("paper", help="Figures 6 and 7, Tables 1 and 2 on the tiny world (builds shadows)")
    paper.add_argument("--out", required=True, help="folder for results.json and the PNG plots")
    paper.add_argument("--world", default="fixtures/world")
    paper.add_argument("--cache", help="shadow cache (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    paper.add_argument("--workers", type=int, default=2, help="shadow models trained at once (default 2)")
    robust = sub.add_parser("robust", help="conf and verdicts under JPEG, resizes, crops and other samplers")
    robust.add_argument("--manifest", default="suites/emoji.toml")
    robust.add_argument("--json", help="write results here")
    args = parser.parse_args(argv)
    if args.bench == "robust":
        from attribcheck.lab.bench.robust import run as run_robust

        return run_robust(args)
    if args.bench == "paper":
        from attribcheck.lab.bench.paper import run as run_paper

        return run_paper(args)
    if args.bench == "instance":
        from attribcheck.lab.bench.instance import run

        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
