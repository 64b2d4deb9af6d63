"""The targets of docs/performance.md, and the table ``make bench`` prints.

Every target is a ratio to a baseline measured in the same run (or, for the p99, an absolute
bound beside one), so that the verdicts hold on a slower or a busier machine.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SINGLE_SHARE = 0.60  # of the bare baseline's requests/s
BATCH_FLOOR_SHARE = 0.50  # of raw executemany rows/s into the key-and-payload table
BATCH_RAW_SHARE = 0.50  # of raw executemany rows/s into Waypost's schema
LATENCY_P99_MS = 15.0  # at half the maximum single-activity rate
LATENCY_P99_VS_BASELINE = 10.0  # times the bare app's p99 at the same paced rate


@dataclass(frozen=True)
class Target:
    """One target (docs/performance.md) and what was measured against it."""

    name: str
    goal: str
    measured: str
    met: bool

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "goal": self.goal, "measured": self.measured, "met": self.met}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def targets(summary: dict[str, Any]) -> list[Target]:
    """Judge the summary (see bench/run.py for its shape) against the targets of
    docs/performance.md."""
    single, batch, latency = summary["single"], summary["batch"], summary["latency"]
    return [
        Target(
            "single-activity requests/s vs bare ASGI",
            f">= {SINGLE_SHARE:.0%}",
            f"{single['ratio']:.1%}",
            single["ratio"] >= SINGLE_SHARE,
        ),
        Target(
            "100-activity batches vs the physical floor",
            f">= {BATCH_FLOOR_SHARE:.0%}",
            f"{batch['floor_ratio']:.1%}",
            batch["floor_ratio"] >= BATCH_FLOOR_SHARE,
        ),
        Target(
            "100-activity batches vs raw executemany, own schema",
            f">= {BATCH_RAW_SHARE:.0%}",
            f"{batch['raw_ratio']:.1%}",
            batch["raw_ratio"] >= BATCH_RAW_SHARE,
        ),
        Target(
            "single-activity p99 at half the maximum rate",
            f"<= {LATENCY_P99_MS:g} ms",
            f"{latency['waypost']['p99_ms']:.2f} ms",
            latency["waypost"]["p99_ms"] <= LATENCY_P99_MS,
        ),
        Target(
            "that p99 vs the bare app's at the same rate",
            f"<= {LATENCY_P99_VS_BASELINE:g}x",
            f"{latency['p99_vs_baseline']:.1f}x",
            latency["p99_vs_baseline"] <= LATENCY_P99_VS_BASELINE,
        ),
    ]


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _us(stats: dict[str, Any], key: str) -> str:
    value = stats.get(key)
    return "" if value is None else f"{value:,.0f}"


def table(summary: dict[str, Any], judged: list[Target]) -> str:
    """The figures, the ratios and the targets as plain text."""
    single, batch, raw, floor, latency = (
        summary["single"],
        summary["batch"],
        summary["raw"],
        summary["floor"],
        summary["latency"],
    )
    b1, w1 = single["baseline"], single["waypost"]
    b100, w100 = batch["baseline"], batch["waypost"]
    lb, lw = latency["baseline"], latency["waypost"]
    rows = [
        ("", "bare ASGI", "Waypost", "ratio"),
        ("single activity: requests/s", f"{b1['rps']:,.0f}", f"{w1['rps']:,.0f}",
         f"{single['ratio']:.1%}"),
        ("single activity: p50 ms", _ms(b1["p50_ms"]), _ms(w1["p50_ms"]), ""),
        ("single activity: p99 ms", _ms(b1["p99_ms"]), _ms(w1["p99_ms"]), ""),
        ("single activity: server CPU us/request", _us(b1, "server_cpu_us_per_request"),
         _us(w1, "server_cpu_us_per_request"), ""),
        ("  of which the HTTP process's", _us(b1, "http_cpu_us_per_request"),
         _us(w1, "http_cpu_us_per_request"), ""),
        ("100-activity batches: requests/s", f"{b100['rps']:,.0f}", f"{w100['rps']:,.0f}",
         f"{batch['ratio']:.1%}"),
        ("100-activity batches: activities/s", f"{b100['activities_per_second']:,.0f}",
         f"{w100['activities_per_second']:,.0f}", ""),
        ("100-activity batches: p50 ms", _ms(b100["p50_ms"]), _ms(w100["p50_ms"]), ""),
        ("100-activity batches: p99 ms", _ms(b100["p99_ms"]), _ms(w100["p99_ms"]), ""),
        ("raw executemany, 100 rows/commit: rows/s", "", f"{raw['rows_per_second']:,.0f}", ""),
        ("Waypost batch activities/s vs raw", "", "", f"{batch['raw_ratio']:.1%}"),
        ("physical floor, 100 rows/commit: rows/s", "", f"{floor['rows_per_second']:,.0f}", ""),
        ("Waypost batch activities/s vs floor", "", "", f"{batch['floor_ratio']:.1%}"),
        (f"paced at {latency['rate']:,.0f} req/s: achieved", f"{lb['rps']:,.0f}",
         f"{lw['rps']:,.0f}", ""),
        (f"paced at {latency['rate']:,.0f} req/s: p50 ms", _ms(lb["p50_ms"]),
         _ms(lw["p50_ms"]), ""),
        (f"paced at {latency['rate']:,.0f} req/s: p99 ms", _ms(lb["p99_ms"]),
         _ms(lw["p99_ms"]), f"{latency['p99_vs_baseline']:.1f}x"),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    in_server = summary.get("options", {}).get("writer_in_server", False)
    where = "a thread of the server's process" if in_server else "a process of its own"
    lines = [f"Waypost's writer: {where}", ""]
    lines += [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    lines.append("")
    lines.append("Targets (docs/performance.md)")
    name_width = max(len(t.name) for t in judged)
    for t in judged:
        verdict = "met" if t.met else "MISSED"
        lines.append(f"  {t.name.ljust(name_width)}  {t.goal:>9}  {t.measured:>11}  {verdict}")
    return "\n".join(lines)
