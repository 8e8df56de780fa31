"""``make bench``: every figure next to its floor, printed and written to docs/performance.md.

python -m bench.run [--quick] [--only warm,cold,scale,peers] [--scale-n 1000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections import Counter
from pathlib import Path

from bench import cold, peers, scale, warm
from bench.common import Results, machine, start_server
from bench.report import write_report

SECTIONS = ("warm", "cold", "scale", "peers")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of about two minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--scale-n", type=int, default=1000, help="concurrent invokes in the large burst")
    parser.add_argument("--out", type=Path, default=Path("docs/performance.md"), help="report to write")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    counts = {
        "n": 300 if args.quick else 2000,
        "seconds": 3 if args.quick else 10,
        "cold": 5 if args.quick else 20,
    }
    sizes = [20] if args.quick else sorted({100, args.scale_n})
    results = Results()
    profile: Counter[str] | None = None
    work = warm.temp_root()
    for section in only:
        print(f"== {section}", flush=True)
        if section == "peers":
            peers.run(results, work, counts["n"], counts["seconds"])
            continue
        # The cold section measures cold starts served by spare sandboxes, started ahead of demand as
        # the issue asks: enough spares for its back-to-back first invokes (--prespawn, in the report).
        spares = ["--prespawn", str(counts["cold"] + 4)] if section == "cold" else []
        server = start_server(work / section, spares)
        try:
            if section == "warm":
                profile = warm.run(results, work, server, counts["n"], counts["seconds"])
            elif section == "cold":
                cold.run(results, work, server, counts["cold"])
            else:
                scale.run(results, work, server, sizes)
        finally:
            server.stop()
    command = "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv)
    write_report(args.out, results, machine(), command.strip(), profile)
    print(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
