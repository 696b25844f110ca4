"""`iioe simulate --scale`: independent shards of the pilot, same proportions, nothing shared, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys

from iioe_tools.simulation.scenario import ScaledScenario, build_scenario, merge_truths


def test_scale_one_is_the_unscaled_scenario() -> None:
    scaled = ScaledScenario(2025, 300, 1)
    assert [*scaled.shards()] == [build_scenario(2025, 300)]
    assert scaled.ground_truth() == build_scenario(2025, 300).ground_truth()


def test_shards_share_no_person_email_or_event_and_keep_the_proportions() -> None:
    scaled = ScaledScenario(2025, 2054, 3)
    keys: set[str] = set()
    emails: set[tuple[str, str]] = set()
    events: set[str] = set()
    for shard in scaled.shards():
        assert not keys & {e.key for e in shard.educators}
        assert not emails & {(e.institution, e.email) for e in shard.educators}
        assert not events & {a.event_id for e in shard.educators for a in e.attempts}
        keys |= {e.key for e in shard.educators}
        emails |= {(e.institution, e.email) for e in shard.educators}
        events |= {a.event_id for e in shard.educators for a in e.attempts}
    truth = scaled.ground_truth()
    assert truth.educators_registered == len(keys) == 3 * 2054
    assert truth.educators_completed_programme_courses == 3 * 1698
    assert truth.certificates_issued == 3 * 580
    assert truth.master_teachers == 3 * 22
    assert truth.course_completions == len(events)
    assert truth.institutions_active == 38
    months = scaled.monthly_registrations()
    for month in ("2025-03", "2025-04"):
        assert months[month].most_common(1)[0][0] == "must"


def test_shards_are_deterministic_and_differ_from_each_other() -> None:
    a, b = ScaledScenario(7, 200, 2), ScaledScenario(7, 200, 2)
    assert a.shard(1) == b.shard(1)
    assert [e.email for e in a.shard(0).educators] != [e.email for e in a.shard(1).educators]
    assert a.shard(1).educators[0].key.startswith("s7-k1-")


def test_merged_truth_sums_per_institution() -> None:
    one, two = build_scenario(3, 100).ground_truth(), build_scenario(4, 100).ground_truth()
    merged = merge_truths([one, two])
    assert merged.educators_registered == 200
    assert merged.course_completions == one.course_completions + two.course_completions
    for row in merged.by_institution:
        parts = [r for t in (one, two) for r in t.by_institution if r.institution == row.institution]
        assert row.certificates_issued == sum(r.certificates_issued for r in parts)


def test_dry_run_at_scale_two() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "iioe_tools.cli.main", "simulate", "--dry-run", "--scale", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["scale"] == 2 and out["educators"] == 4108
    assert out["ground_truth"]["certificates_issued"] == 1160
    assert out["duplicate_deliveries"] == 50
    assert {m["month"]: m["lead_rank"] for m in out["months"]}["2025-03"] == 1
