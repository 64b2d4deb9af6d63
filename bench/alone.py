"""``python -m bench.alone``: Waypost's single-activity maximum and paced latency, repeated.

Not part of ``make bench``. It starts Waypost as ``python -m bench`` does (the writer in a
process of its own unless ``--writer-in-server``), on a fresh SQLite database, and repeats a
pair of runs with the same wrk script and request bodies: single activities at the maximum
(64 connections), then paced at ``--rate`` requests/s. No baseline runs: it is for comparing
two versions of Waypost, run in turn from their checkouts on the same machine, when a change
is smaller than what separates two runs of ``make bench`` (docs/performance.md). It prints
each pair's requests/s, server CPU µs a request (the HTTP process's in brackets) and the paced
p50 and p99, and checks that every acknowledged activity is stored.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.harness import BenchFailure, Harness, say
from bench.load import LoadError, wrk_path
from bench.run import layout_env
from bench.servers import ServerError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alone", description=__doc__)
    parser.add_argument("--rate", type=float, default=2500.0, help="paced requests/s (2500)")
    parser.add_argument("--pairs", type=int, default=3, help="maximum and paced runs (3)")
    parser.add_argument("--seconds", type=float, default=4.0, help="per maximum run (4)")
    parser.add_argument("--paced-seconds", type=float, default=6.0, help="per paced run (6)")
    parser.add_argument("--writer-in-server", action="store_true")
    parser.add_argument("--out", type=Path, help="results file (JSON)")
    args = parser.parse_args(argv)
    if not 100 <= args.rate <= 100_000:
        parser.error("--rate must be 100 to 100000")
    if not 1 <= args.pairs <= 50:
        parser.error("--pairs must be 1 to 50")
    try:
        wrk_path()
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="waypost-alone-"))
    harness = Harness(workdir, layout_env(args.writer_in_server))
    pairs = []
    try:
        with ExitStack() as stack:
            waypost = harness.start_waypost(stack)
            waypost.wait_ready()
            pools = harness.setup()
            harness.measure(waypost, pools.single, 1, 64, 2.0)
            for n in range(args.pairs):
                say(f"pair {n + 1} of {args.pairs}")
                top = harness.measure(waypost, pools.single, 1, 64, args.seconds)
                paced = harness.measure(
                    waypost, pools.single, 1, 64, args.paced_seconds, 1_000_000 / args.rate
                )
                pairs.append(
                    {
                        "max_rps": round(top.requests_per_second),
                        "max_cpu_us": round(top.server_cpu_per_request_us or 0),
                        "max_http_cpu_us": round(top.http_cpu_per_request_us or 0),
                        "paced_rps": round(paced.requests_per_second),
                        "paced_p50_ms": paced.p50_us / 1000,
                        "paced_p99_ms": paced.p99_us / 1000,
                        "paced_cpu_us": round(paced.server_cpu_per_request_us or 0),
                        "paced_http_cpu_us": round(paced.http_cpu_per_request_us or 0),
                    }
                )
    except (BenchFailure, LoadError, ServerError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("pair  max req/s  CPU µs (HTTP)  paced req/s  p50 ms  p99 ms  CPU µs (HTTP)")
    for n, p in enumerate(pairs, 1):
        print(
            f"{n:>4}  {p['max_rps']:>9,}  {p['max_cpu_us']:>6} ({p['max_http_cpu_us']:>3})"
            f"  {p['paced_rps']:>11,}  {p['paced_p50_ms']:>6.2f}  {p['paced_p99_ms']:>6.2f}"
            f"  {p['paced_cpu_us']:>6} ({p['paced_http_cpu_us']:>3})"
        )
    acknowledged = sum(c["acknowledged"] for c in harness.checks)
    stored = sum(c["stored"] for c in harness.checks)
    print(f"Stored == acknowledged: {stored:,} stored, {acknowledged:,} acknowledged.")
    if args.out is not None:
        options = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.out.write_text(json.dumps({"options": options, "pairs": pairs}, indent=2) + "\n")
    return 0 if stored == acknowledged else 1


if __name__ == "__main__":
    raise SystemExit(main())
