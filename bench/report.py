"""The benchmark's outputs: a text table, the target ratios, a JSON file and a PNG chart."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios import Result


@dataclass
class Target:
    name: str
    value: float | None
    limit: float
    at_most: bool
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def describe(self) -> str:
        relation = "≤" if self.at_most else "≥"
        shown = "n/a" if self.value is None else f"{self.value:.2f}{self.unit}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[self.met]
        return f"{self.name}: {shown} (target {relation} {self.limit}{self.unit}) {verdict}"


def _find(results: list[Result], scenario: str, strategy: str = "-") -> Result | None:
    for result in results:
        if result.scenario == scenario and result.strategy == strategy and not result.skipped:
            return result
    return None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _throughput(result: Result | None) -> float | None:
    return result.throughput if result else None


def _p50(result: Result | None) -> float | None:
    return result.p50_ms if result else None


def targets(results: list[Result]) -> list[Target]:
    noop = _find(results, "ceiling-noop")
    update = _find(results, "ceiling-update")
    hot = _find(results, "hot-hold", "atomic")
    spread = _find(results, "spread-hold", "atomic")
    first = _find(results, "browse-first")
    deep = _find(results, "browse-deep")
    expiry = [r for r in results if r.scenario == "expiry" and not r.skipped]
    return [
        Target(
            "hot-hold(atomic) / ceiling-update",
            _ratio(_throughput(hot), _throughput(update)),
            0.8,
            at_most=False,
        ),
        Target(
            "spread-hold(atomic) / ceiling-noop",
            _ratio(_throughput(spread), _throughput(noop)),
            0.5,
            at_most=False,
        ),
        Target("hot-hold(atomic) p99", hot.p99_ms if hot else None, 100, at_most=True, unit=" ms"),
        Target(
            "browse deep p50 / first p50",
            _ratio(_p50(deep), _p50(first)),
            1.5,
            at_most=True,
        ),
        Target(
            "expiry cleared (slowest strategy)",
            max((r.seconds or 0.0) for r in expiry) if expiry else None,
            10,
            at_most=True,
            unit=" s",
        ),
    ]


def ratios(results: list[Result]) -> list[Target]:
    """The ratios against the framework's floor (bench/lean_app.py), all from one run."""
    lean_noop = _throughput(_find(results, "ceiling-lean-noop"))
    lean_update = _throughput(_find(results, "ceiling-lean-update"))
    health = _find(results, "ceiling-noop")
    hot = _find(results, "hot-hold", "atomic")
    checkout = _find(results, "checkout", "atomic")
    return [
        Target("/health / lean noop", _ratio(_throughput(health), lean_noop), 0.7, at_most=False),
        Target(
            "hot-hold(atomic) / lean update",
            _ratio(_throughput(hot), lean_update),
            0.5,
            at_most=False,
        ),
        Target(
            "browse-first (50 products) / lean noop",
            _ratio(_throughput(_find(results, "browse-first")), lean_noop),
            0.15,
            at_most=False,
        ),
        Target(
            "browse-cached (Redis) / lean noop",
            _ratio(_throughput(_find(results, "browse-cached")), lean_noop),
            0.4,
            at_most=False,
        ),
        Target(
            "checkout flows(atomic) / hot-hold(atomic)",
            _ratio(_throughput(checkout), _throughput(hot)),
            0.25,
            at_most=False,
        ),
        Target(
            "hot-hold(atomic) p99 at 64 clients",
            hot.p99_ms if hot else None,
            150,
            at_most=True,
            unit=" ms",
        ),
    ]


def ratios_table(results: list[Result]) -> str:
    """The ratios as a Markdown table (the one README "Benchmarks" shows)."""
    lines = ["| ratio | measured | target | verdict |", "|---|---|---|---|"]
    for ratio in ratios(results):
        shown = "n/a" if ratio.value is None else f"{ratio.value:.2f}{ratio.unit}"
        relation = "≤" if ratio.at_most else "≥"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[ratio.met]
        target = f"{relation} {ratio.limit}{ratio.unit}"
        lines.append(f"| {ratio.name} | {shown} | {target} | {verdict} |")
    return "\n".join(lines)


def _cell(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(results: list[Result]) -> str:
    header = (
        "scenario",
        "strategy",
        "ops/s",
        "p50 ms",
        "p99 ms",
        "requests",
        "errors",
        "oversold",
        "consistent",
        "seconds",
        "cpu srv/pg/gen/other",
    )
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        if r.skipped:
            rows.append((r.scenario, r.strategy, f"skipped: {r.skipped}", *[""] * 8))
            continue
        cpu = r.cpu_cores
        cpu_cell = (
            f"{cpu['server']:.2f}/{cpu['postgres']:.2f}/{cpu['generator']:.2f}/{cpu['other']:.2f}"
            if cpu
            else "-"
        )
        rows.append(
            (
                r.scenario,
                r.strategy,
                _cell(r.throughput),
                _cell(r.p50_ms, 2),
                _cell(r.p99_ms, 2),
                _cell(r.requests),
                _cell(r.errors),
                _cell(r.oversold),
                _cell(r.consistent),
                _cell(r.seconds, 2),
                cpu_cell,
            )
        )
    measured = [row for row in rows if not row[2].startswith("skipped")]
    widths = [max(len(row[i]) for row in measured) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        if row[2].startswith("skipped"):
            lines.append(f"| {row[0]:<{widths[0]}} | {row[1]:<{widths[1]}} | {row[2]}")
            continue
        lines.append(
            "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        )
        if index == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    fair = fairness_table(results)
    return "\n".join(lines) + (f"\n\n{fair}" if fair else "")


def _wait(spread: dict[str, float] | None) -> str:
    if not spread:
        return "-"
    return f"{spread['p50']:,.1f} / {spread['p90']:,.1f} / {spread['max']:,.1f}"


def fairness_table(results: list[Result]) -> str:
    """The sell-out's fairness per locking strategy: the share of the units the first N
    attempts by send time got (N = units), and winners' and losers' waits."""
    rows = [r for r in results if r.scenario == "sell-out" and not r.skipped]
    rows = [r for r in rows if r.details.get("fairness") is not None]
    if not rows:
        return ""
    header = (
        "sell-out",
        "fairness",
        "random draw",
        "winners wait p50/p90/max ms",
        "losers wait p50/p90/max ms",
    )
    cells = [header] + [
        (
            r.strategy,
            f"{r.details['fairness']:.3f}",
            f"{r.details.get('random_draw_fairness') or 0:.3f}",
            _wait(r.details.get("winner_wait_ms")),
            _wait(r.details.get("loser_wait_ms")),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_json(path: Path, results: list[Result], meta: dict[str, Any]) -> None:
    payload = {
        "meta": meta,
        "results": [dataclasses.asdict(r) for r in results],
        "targets": [{**dataclasses.asdict(t), "met": t.met} for t in targets(results)],
        "ratios": [{**dataclasses.asdict(t), "met": t.met} for t in ratios(results)],
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_chart(path: Path, results: list[Result], title: str) -> bool:
    """Throughput per scenario, one bar per locking strategy. Needs matplotlib (the
    `bench` extra); returns False when it is not installed."""
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return False
    measured = [r for r in results if not r.skipped and r.throughput is not None]
    scenarios = list(dict.fromkeys(r.scenario for r in measured))
    strategies = ["-", "atomic", "pessimistic", "optimistic"]
    colors = {
        "-": "#7f7f7f",
        "atomic": "#1f77b4",
        "pessimistic": "#ff7f0e",
        "optimistic": "#2ca02c",
    }
    figure, axes = plt.subplots(figsize=(11, 5.5))
    width = 0.26
    for position, scenario in enumerate(scenarios):
        present = [
            s
            for s in strategies
            if any(r.scenario == scenario and r.strategy == s for r in measured)
        ]
        for offset, strategy in enumerate(present):
            value = next(
                r.throughput or 0.0
                for r in measured
                if r.scenario == scenario and r.strategy == strategy
            )
            x = position + (offset - (len(present) - 1) / 2) * width
            label = "no stock involved" if strategy == "-" else strategy
            axes.bar(x, value, width * 0.95, color=colors[strategy], label=label)
            axes.annotate(
                f"{value:,.0f}",
                (x, value),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                xytext=(0, 2),
                textcoords="offset points",
            )
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), loc="upper right")
    axes.set_xticks(range(len(scenarios)), scenarios, rotation=20, ha="right")
    # Expiry clears holds thousands of times faster than requests arrive: a log scale keeps
    # every bar readable.
    axes.set_yscale("log")
    axes.set_ylabel("successful operations per second (log scale)")
    axes.set_title(title, fontsize=10)
    axes.margins(y=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
