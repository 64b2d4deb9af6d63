"""``python -m bench.profile``: where Waypost's ingest time goes, under the benchmark's load.

Starts Waypost as ``make bench`` does, drives it with the same wrk script, and samples it
with py-spy (``pip install py-spy``) while it runs. Writes the collapsed stacks (usable with
any flame-graph tool) and prints a summary: each thread's share of the samples, then the
functions with the most samples, by their own time and including what they call.

``--mode gil`` (the default) samples only the thread holding the GIL: Python's CPU time.
``--mode wall`` samples every thread, idle or not: where each thread waits.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from bench.harness import Harness, say
from bench.run import layout_env

SITE = re.compile(r"\(/\S*?/(site-packages|lib/python3\.\d+)/")


def summarize(collapsed: str, top: int = 30, thread_name: str = "") -> str:
    """Threads' shares and the top functions of py-spy's raw (collapsed) output, of the
    threads whose name holds ``thread_name`` (all threads when empty)."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        # With --subprocesses each stack starts with its process and those above it: a stack
        # of a process the server started is named after that process.
        processes = []
        while frames and frames[0].startswith("process "):
            processes.append(frames.pop(0))
        thread = frames.pop(0) if frames else ""
        if len(processes) > 1:
            thread = f"child {processes[-1].split(':', 1)[0]}: {thread}"
        if thread_name not in thread:
            continue
        names = [SITE.sub("(", frame).replace(str(Path.cwd()) + "/", "") for frame in frames]
        total += count
        threads[thread] += count
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "threads:"]
    lines += [f"  {c / total:6.1%}  {t}" for t, c in threads.most_common(8)]
    lines += ["", "own time:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in own.most_common(top)]
    lines += ["", "including callees:"]
    lines += [f"  {c / total:6.1%}  {f}" for f, c in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("kind", choices=["single", "batch"], help="what the load sends")
    parser.add_argument("--mode", choices=["gil", "wall"], default="gil")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds sampled (8)")
    parser.add_argument("--connections", type=int, default=None, help="default 64 or 16")
    parser.add_argument("--rate", type=int, default=100, help="samples per second (100)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="directory")
    parser.add_argument("--thread", default="", help="summarize only threads named so")
    parser.add_argument(
        "--writer-in-server", action="store_true", help="the writer as a thread of the server"
    )
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 120:
        parser.error("--seconds must be over 0 and at most 120")
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("bench.profile needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    per_request = 1 if args.kind == "single" else 100
    connections = args.connections or (64 if per_request == 1 else 16)
    args.out.mkdir(parents=True, exist_ok=True)
    stacks = args.out / f"profile-{args.kind}-{args.mode}.txt"
    with tempfile.TemporaryDirectory(prefix="waypost-profile-") as tmp, ExitStack() as stack:
        harness = Harness(Path(tmp), layout_env(args.writer_in_server))
        waypost = harness.start_waypost(stack)
        waypost.wait_ready()
        pools = harness.setup()
        pool = pools.single if per_request == 1 else pools.batch
        say("warming up")
        harness.measure(waypost, pool, per_request, connections, 2)
        command = [py_spy, "record", "--pid", str(waypost.pid), "--duration"]
        command += [str(int(args.seconds)), "--rate", str(args.rate), "--format", "raw"]
        command += ["--threads", "--subprocesses", "--nonblocking", "--output", str(stacks)]
        command += ["--gil"] if args.mode == "gil" else ["--idle"]
        say(f"sampling {args.kind} for {int(args.seconds)} s ({args.mode})")
        sampler = subprocess.Popen(  # noqa: S603 - py-spy on our own child process
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        result = harness.measure(waypost, pool, per_request, connections, args.seconds + 1)
        _, errors = sampler.communicate(timeout=60)
        if sampler.returncode != 0:
            print(f"py-spy failed: {errors.decode(errors='replace')}", file=sys.stderr)
            return 1
    cpu = result.server_cpu_per_request_us
    print(
        f"{args.kind}, {connections} connections: {result.requests_per_second:,.0f} requests/s "
        f"({result.requests_per_second * per_request:,.0f} activities/s), "
        f"p50 {result.p50_us / 1000:.1f} ms, p99 {result.p99_us / 1000:.1f} ms, "
        f"server CPU {'?' if cpu is None else f'{cpu:,.0f}'} us per request\n"
    )
    print(summarize(stacks.read_text(), thread_name=args.thread))
    print(f"\nCollapsed stacks: {stacks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
