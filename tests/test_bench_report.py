"""The bench report: targets judged as issue #11 states them, every figure as a ratio to its ceiling."""

from __future__ import annotations

import json
from pathlib import Path

from bench.platform import ServiceMemory, memory_of
from bench.report import LatencyPoint, Results, write_results


def results(p99_at_500: float, rss: float) -> Results:
    r = Results(meta={"mode": "quick", "cores": 2, "started": "now", "load_average_at_start": (1.0, 1.0, 1.0)})
    r.ceilings = {"publish_async": 20_000.0, "fetch_ack": 10_000.0}
    r.add("completions → certificates, end to end", 7_000, "completions/s", ceiling="publish_async", target_ratio=0.3)
    r.add("register_educator over NATS (50 in flight)", 1_500, "commands/s", ceiling="publish_async", target=2000)
    r.add("analytics rebuild", 4_000, "events/s", ceiling="fetch_ack", target_ratio=0.5)
    for rate, p99 in ((100, 10.0), (500, p99_at_500), (1000, 300.0)):
        r.latency.append(LatencyPoint(rate, rate * 0.99, 5.0, p99, p99 * 1.2, rate, 0, 0.5, 2.0))
    r.memory = {"certification": ServiceMemory(1, rss - 10, rss), "analytics": ServiceMemory(2, 50.0, 60.0)}
    return r


def test_targets_pass_and_miss_as_the_issue_states_them(tmp_path: Path) -> None:
    r = results(p99_at_500=80.0, rss=250.0)
    verdicts = {target: passed for target, _, passed in r.targets()}
    assert verdicts == {
        "completions → certificates ≥ 0.3 × publish_async": True,  # 7,000 / 20,000 = 0.35
        "registration ≥ 2,000 commands/s over NATS": False,
        "p99 < 100 ms at 500/s": True,
        "rebuild ≥ 0.5 × fetch+ack": False,  # 0.4
        "< 200 MB RSS per service": False,
    }
    assert r.figures[0].ratio == 7_000 / 20_000


def test_results_are_written_as_json_markdown_and_png(tmp_path: Path) -> None:
    paths = write_results(results(p99_at_500=150.0, rss=90.0), tmp_path)
    data = json.loads(paths[0].read_text())
    assert data["ceilings"]["publish_async"] == 20_000.0
    assert {t["target"]: t["passed"] for t in data["targets"]}["p99 < 100 ms at 500/s"] is False
    markdown = paths[1].read_text()
    assert "| p99 < 100 ms at 500/s | p99 150.0 ms (0 missing) | miss |" in markdown
    assert "0.350 × publish_async" in markdown
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_memory_is_read_from_proc() -> None:
    mine = memory_of(__import__("os").getpid())
    assert 0 < mine.rss_mb <= mine.peak_rss_mb
