"""``python -m bench.workers``: what a second HTTP worker process gives the bare app, and how
much of the machine Waypost leaves idle at its single-activity maximum.

Not part of ``make bench``. The ingest target compares Waypost with the bare ASGI app under
the same server, so several HTTP processes feeding Waypost's one writer would be measured
against the bare app given as many. This measures both sides of that choice on one machine,
in turn, ``--rounds`` times: the bare app (one result a request) under uvicorn with one and
with two worker processes (uvicorn's httptools protocol for both: the worker processes are
started by uvicorn, which cannot hand them the benchmark's protocol class), and Waypost as
``python -m bench`` starts it (one HTTP process, the writer in a process of its own), each at
the maximum with the benchmark's single-activity load; for each run the share of the
machine's CPUs that stayed idle. A second HTTP process can give Waypost at most that idle
share more; it gives the bare app what the runs show.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench import payloads
from bench.harness import BenchFailure, Harness, busy_cpu_seconds, say
from bench.load import LoadError, RunResult, run_wrk, wrk_path
from bench.report import median
from bench.run import layout_env
from bench.servers import ServerError, free_port

BARE = (
    "import uvicorn\n"
    "from bench.serve import run_options\n"
    "options = run_options()\n"
    "options.update(workers={workers}, http='httptools', factory=True)\n"
    "uvicorn.run('bench.workers:bare_app', host='127.0.0.1', port={port}, **options)\n"
)


def bare_app() -> object:
    """The bare app for uvicorn's worker processes (imported by name in each)."""
    from bench.baseline import BaselineApp

    return BaselineApp(1)


def _wait_accepting(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the bare app exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
        except OSError:
            time.sleep(0.1)
            continue
        # uvicorn's parent accepts before every worker has started.
        time.sleep(1.5)
        return
    raise ServerError("the bare app did not start in 30 s")


def _timed(measure: Callable[[], RunResult], seconds: float) -> tuple[RunResult, float]:
    """A run, and the share of the machine's CPUs idle in the middle of it (from a second
    after its start to a second before its load ends: not wrk's start, nor its drain)."""
    window: list[float] = []

    def sample() -> None:
        time.sleep(1.0)
        first, started = busy_cpu_seconds(), time.monotonic()
        time.sleep(max(0.5, seconds - 2.0))
        last, elapsed = busy_cpu_seconds(), time.monotonic() - started
        if first is not None and last is not None:
            window.append(max(0.0, 1.0 - (last - first) / (elapsed * (os.cpu_count() or 1))))

    sampler = threading.Thread(target=sample)
    sampler.start()
    result = measure()
    sampler.join()
    return result, window[0] if window else float("nan")


def bare_run(workers: int, pool_file: Path, seconds: float) -> tuple[RunResult, float]:
    """The bare app under ``workers`` uvicorn worker processes, at its maximum."""
    port = free_port()
    code = BARE.format(workers=workers, port=port)
    process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", code],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_accepting(port, process)
        url = f"http://127.0.0.1:{port}{payloads.PATH}"
        run_wrk(url, pool_file, seconds=2.0, connections=64)
        return _timed(lambda: run_wrk(url, pool_file, seconds=seconds, connections=64), seconds)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs (3)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per run (6)")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1 to 20")
    if not 4 <= args.seconds <= 60:
        parser.error("--seconds must be 4 to 60")
    try:
        wrk_path()
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="waypost-workers-"))
    harness = Harness(workdir, layout_env(False))
    runs: dict[str, list[tuple[RunResult, float]]] = {
        "bare app, 1 worker": [],
        "bare app, 2 workers": [],
        "Waypost, 1 HTTP process and the writer's": [],
    }
    try:
        with ExitStack() as stack:
            waypost = harness.start_waypost(stack)
            waypost.wait_ready()
            pools = harness.setup()
            harness.measure(waypost, pools.single, 1, 64, 2.0)
            for n in range(args.rounds):
                say(f"round {n + 1} of {args.rounds}")
                for workers in (1, 2):
                    name = f"bare app, {workers} worker{'s' if workers > 1 else ''}"
                    runs[name].append(bare_run(workers, pools.single, args.seconds))
                runs["Waypost, 1 HTTP process and the writer's"].append(
                    _timed(
                        lambda: harness.measure(waypost, pools.single, 1, 64, args.seconds),
                        args.seconds,
                    )
                )
    except (BenchFailure, LoadError, ServerError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'':44}  {'requests/s (median)':>20}  {'each round':>28}  idle CPU")
    for name, results in runs.items():
        rates = [r[0].requests_per_second for r in results]
        idle = [r[1] for r in results]
        each = ", ".join(f"{x:,.0f}" for x in rates)
        print(
            f"{name:44}  {median(rates):>20,.0f}  {each:>28}  "
            + ", ".join(f"{x:.0%}" for x in idle)
        )
    acknowledged = sum(c["acknowledged"] for c in harness.checks)
    stored = sum(c["stored"] for c in harness.checks)
    print(f"Stored == acknowledged: {stored:,} stored, {acknowledged:,} acknowledged.")
    return 0 if stored == acknowledged else 1


if __name__ == "__main__":
    raise SystemExit(main())
