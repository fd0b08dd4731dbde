import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m attribcheck.bench")
    sub = parser.add_subparsers(dest="bench", required=True)
    inst = sub.add_parser("instance", help="mean conf per rho for each key strategy; innocents' verdicts")
    inst.add_argument("--world", default="fixtures/world")
    inst.add_argument("--json", help="write results here")
    inst.add_argument("--k", type=int, default=30)
    inst.add_argument("--alpha", type=float, default=0.01)
    inst.add_argument("--figure", help="write a PNG of keys beside source and suspect outputs")
    args = parser.parse_args(argv)
    if args.bench == "instance":
        from attribcheck.bench.instance import run

        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
