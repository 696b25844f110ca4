"""Results of one `make bench` run: docs/bench/results.json, results.md (table with targets) and
results.png (throughput and latency against offered load), every figure also as a ratio to the
raw ceiling measured in the same run on the same servers."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CEILING_LABELS = {
    "publish_async": "nats-py publish_async, 1,000 in flight (msgs/s)",
    "fetch_ack": "pull fetch(500) + ack (msgs/s)",
}
RSS_TARGET_MB = 200.0
P99_TARGET_MS = 100.0
P99_TARGET_RATE = 500


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    ceiling: str | None = None
    ratio: float | None = None
    target: str | None = None
    passed: bool | None = None
    detail: str = ""


@dataclass
class LatencyPoint:
    offered: int
    achieved: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    count: int
    missing: int
    raw_p50_ms: float
    raw_p99_ms: float


@dataclass
class Results:
    meta: dict[str, Any]
    ceilings: dict[str, float] = field(default_factory=dict)
    raw_latency: dict[int, tuple[float, float]] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    latency: list[LatencyPoint] = field(default_factory=list)
    memory: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        *,
        ceiling: str | None = None,
        target: float | None = None,
        target_ratio: float | None = None,
        detail: str = "",
    ) -> Figure:
        ratio = value / self.ceilings[ceiling] if ceiling and self.ceilings.get(ceiling) else None
        figure = Figure(name, value, unit, ceiling, ratio, detail=detail)
        if target is not None:
            figure.target, figure.passed = f"≥ {target:,.0f} {unit}", value >= target
        elif target_ratio is not None and ratio is not None:
            figure.target, figure.passed = f"≥ {target_ratio:g} × {ceiling}", ratio >= target_ratio
        self.figures.append(figure)
        return figure

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, passed) for the five targets of issue #11, in its order; None: not measured."""
        out: list[tuple[str, str, bool | None]] = []
        for prefix, target in (
            ("completions → certificates", "completions → certificates ≥ 0.3 × publish_async"),
            ("register_educator over NATS", "registration ≥ 2,000 commands/s over NATS"),
        ):
            f = next((f for f in self.figures if f.name.startswith(prefix)), None)
            out.append(_target(target, f))
        at = next((p for p in self.latency if p.offered == P99_TARGET_RATE), None)
        out.append(
            (
                f"p99 < {P99_TARGET_MS:g} ms at {P99_TARGET_RATE}/s",
                f"p99 {at.p99_ms:,.1f} ms ({at.missing} missing)" if at else "not measured",
                (at.p99_ms < P99_TARGET_MS and at.missing == 0) if at else None,
            )
        )
        f = next((f for f in self.figures if f.name == "analytics rebuild"), None)
        out.append(_target("rebuild ≥ 0.5 × fetch+ack", f))
        if self.memory:
            worst = max(self.memory.items(), key=lambda kv: _peak(kv[1]))
            out.append(
                (
                    f"< {RSS_TARGET_MB:g} MB RSS per service",
                    f"largest peak: {worst[0]} {_peak(worst[1]):,.0f} MB",
                    _peak(worst[1]) < RSS_TARGET_MB,
                )
            )
        else:
            out.append((f"< {RSS_TARGET_MB:g} MB RSS per service", "not measured", None))
        return out


def _target(target: str, f: Figure | None) -> tuple[str, str, bool | None]:
    if f is None:
        return (target, "not measured", None)
    ratio = f" = {f.ratio:.3f} × {f.ceiling}" if f.ratio is not None else ""
    return (target, f"{f.value:,.0f} {f.unit}{ratio}", f.passed)


def _peak(memory: Any) -> float:
    return float(memory["peak_rss_mb"] if isinstance(memory, dict) else memory.peak_rss_mb)


def _loads(values: Any) -> str:
    return ", ".join(f"{x:.1f}" for x in values)


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def to_json(results: Results) -> dict[str, Any]:
    data = asdict(results)
    data["raw_latency"] = {str(k): {"p50_ms": v[0], "p99_ms": v[1]} for k, v in results.raw_latency.items()}
    data["memory"] = {k: (asdict(v) if not isinstance(v, dict) else v) for k, v in results.memory.items()}
    data["targets"] = [{"target": t, "measured": m, "passed": p} for t, m, p in results.targets()]
    return data


def to_markdown(results: Results) -> str:
    m = results.meta
    lines = [
        "# Benchmark results",
        "",
        f"Mode **{m.get('mode')}**, commit `{m.get('commit')}`, {m.get('started')}, {m.get('cores')} cores, "
        f"Python {m.get('python')}, load average at start {_loads(m.get('load_average_at_start', ()))}"
        f"{' — ' + m['label'] if m.get('label') else ''}.",
        "",
        "## Ceilings (same run, same servers)",
        "",
        "| ceiling | value |",
        "|---|---:|",
    ]
    lines += [f"| {CEILING_LABELS.get(k, k)} | {_fmt(v)} |" for k, v in results.ceilings.items()]
    lines += ["", "## Targets (issue #11)", "", "| target | measured | result |", "|---|---|---|"]
    for target, measured, passed in results.targets():
        lines.append(f"| {target} | {measured} | {'pass' if passed else 'miss' if passed is not None else '–'} |")
    lines += [
        "",
        "## Throughput",
        "",
        "| measurement | value | unit | ratio to ceiling | detail |",
        "|---|---:|---|---:|---|",
    ]
    for f in results.figures:
        ratio = f"{f.ratio:.3f} × {f.ceiling}" if f.ratio is not None else "–"
        lines.append(f"| {f.name} | {_fmt(f.value)} | {f.unit} | {ratio} | {f.detail} |")
    if results.latency:
        lines += [
            "",
            "## Latency: completion published → CertificateIssued seen",
            "",
            "| offered /s | achieved /s | achieved ÷ publish_async | p50 ms | p99 ms | max ms"
            " | raw PubAck p50 / p99 ms | p99 ÷ raw p99 | missing |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        ceiling = results.ceilings.get("publish_async")
        for p in results.latency:
            ratio = _fmt(p.achieved / ceiling, 3) if ceiling else "–"
            vs_raw = _fmt(p.p99_ms / p.raw_p99_ms, 1) if p.raw_p99_ms else "–"
            lines.append(
                f"| {p.offered} | {_fmt(p.achieved)} | {ratio} | {_fmt(p.p50_ms, 1)} | {_fmt(p.p99_ms, 1)} | "
                f"{_fmt(p.max_ms, 1)} | {_fmt(p.raw_p50_ms, 1)} / {_fmt(p.raw_p99_ms, 1)} | {vs_raw} | {p.missing} |"
            )
    if results.memory:
        lines += [
            "",
            "## Memory of each service process",
            "",
            "| service | peak RSS MB | RSS MB at the end |",
            "|---|---:|---:|",
        ]
        for name, mem in sorted(results.memory.items()):
            d = asdict(mem) if not isinstance(mem, dict) else mem
            lines.append(f"| {name} | {_fmt(d['peak_rss_mb'], 1)} | {_fmt(d['rss_mb'], 1)} |")
    if results.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in results.notes]
    lines += ["", "![throughput and latency against offered load](results.png)", ""]
    return "\n".join(lines)


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ceiling = results.ceilings.get("publish_async")
    offered = [p.offered for p in results.latency]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    if results.latency:
        left.plot(
            offered, [p.achieved for p in results.latency], "o-", label="achieved (each one issues a certificate)"
        )
        left.plot(offered, offered, ":", color="grey", label="offered")
        e2e = next((f for f in results.figures if f.name.startswith("completions")), None)
        if e2e is not None:
            left.axhline(
                e2e.value,
                color="tab:green",
                ls="--",
                label=f"e2e saturation {e2e.value:,.0f} completions/s (3 per cert.)",
            )
        left.set_xlabel("offered completions/s")
        left.set_ylabel("per second")
        if ceiling:
            twin = left.twinx()
            twin.set_ylim(*(y / ceiling for y in left.get_ylim()))
            twin.set_ylabel("÷ raw publish_async ceiling")
        left.legend(loc="upper left", fontsize=8)
        left.set_title("throughput vs offered load")
        right.plot(offered, [p.p50_ms for p in results.latency], "o-", label="p50 e2e")
        right.plot(offered, [p.p99_ms for p in results.latency], "s-", label="p99 e2e")
        right.plot(offered, [p.raw_p50_ms for p in results.latency], "o:", color="grey", label="p50 raw PubAck")
        right.plot(offered, [p.raw_p99_ms for p in results.latency], "s:", color="black", label="p99 raw PubAck")
        right.axhline(P99_TARGET_MS, color="tab:red", ls="--", lw=0.8, label="p99 target")
        right.set_yscale("log")
        right.set_xlabel("offered completions/s")
        right.set_ylabel("ms (log)")
        right.legend(fontsize=8)
        right.set_title("completion → CertificateIssued latency")
    fig.suptitle(
        f"IIOE bench ({results.meta.get('mode')}, {results.meta.get('cores')} cores, {results.meta.get('started')})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "results.png"]
    paths[0].write_text(json.dumps(to_json(results), indent=2, default=str) + "\n")
    paths[1].write_text(to_markdown(results))
    plot(results, paths[2])
    return paths
