"""The pilot scenario, its ground truth and the comparison with analytics (no servers needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from iioe.envelope import CONTENT_TYPE
from iioe.parsing import parse_event
from iioe.reference import load_institutions
from iioe.subjects import INSTITUTION_CODE_RE, event_subject
from iioe_tools.simulation import COURSES, Attempt, best_scores, build_scenario, is_certified
from iioe_tools.simulation.compare import AnalyticsSummary, compare, expected_delta, render_table
from iioe_tools.simulation.driver import course_completed_event
from iioe_tools.simulation.scenario import MIN_SCORE, Scenario, scaled


@pytest.fixture(scope="module")
def pilot() -> Scenario:
    return build_scenario(2025)


def attempt(course: str, n: int, score: int) -> Attempt:
    return Attempt(course, n, score, datetime(2025, 4, 1, tzinfo=UTC) + timedelta(days=n), f"id-{course}-{n}")


def test_default_scenario_has_the_real_pilot_counts(pilot: Scenario) -> None:
    truth = pilot.ground_truth()
    assert truth.educators_registered == 2054
    assert truth.institutions_active == 38
    assert truth.educators_completed_programme_courses == 1698
    assert truth.certificates_issued == 580
    assert truth.master_teachers == 22
    assert truth.course_completions == len({a.event_id for e in pilot.educators for a in e.attempts})
    assert {r.institution for r in truth.by_institution} == set(load_institutions())
    assert all(r.educators_registered >= 1 for r in truth.by_institution)
    assert sum(r.educators_registered for r in truth.by_institution) == 2054


def test_same_seed_same_scenario_other_seed_other_people(pilot: Scenario) -> None:
    again = build_scenario(2025)
    assert again == pilot
    assert [e.email for e in again.educators] == [e.email for e in pilot.educators]
    other = build_scenario(2026)
    assert other.ground_truth().certificates_issued == 580
    assert not {e.email for e in other.educators} & {e.email for e in pilot.educators}
    assert not {a.event_id for e in other.educators for a in e.attempts} & {
        a.event_id for e in pilot.educators for a in e.attempts
    }


def test_must_leads_new_registrations_in_march_and_april(pilot: Scenario) -> None:
    months = pilot.monthly_registrations()
    assert set(months) == {"2025-02", "2025-03", "2025-04", "2025-05", "2025-06"}
    for month in ("2025-03", "2025-04"):
        counts = months[month]
        must = counts["must"]
        assert all(n < must for code, n in counts.items() if code != "must"), (month, counts.most_common(3))


@pytest.mark.parametrize("size", [60, 100, 250, 1000, 4108])
def test_counts_scale_proportionally(size: int) -> None:
    s = build_scenario(7, size)
    truth = s.ground_truth()
    assert truth.educators_registered == size
    assert truth.educators_completed_programme_courses == round(size * 1698 / 2054)
    assert truth.certificates_issued == round(size * 580 / 2054)
    assert truth.master_teachers == round(size * 22 / 2054)
    assert truth.institutions_active == 38
    months = s.monthly_registrations()
    for month in ("2025-03", "2025-04"):
        assert months[month].most_common(1)[0][0] == "must"
        assert sorted(months[month].values())[-2:-1] < [months[month]["must"]]


def test_scaling_helper_is_exact_at_the_real_size() -> None:
    assert scaled(1698, 2054) == 1698 and scaled(580, 4108) == 1160 and scaled(22, 60) == 1


def test_small_scenarios_still_work() -> None:
    for size in (1, 5, 37, 38):
        truth = build_scenario(3, size).ground_truth()
        assert truth.educators_registered == size
        assert truth.institutions_active == 38 if size == 38 else 1 <= truth.institutions_active <= size
    with pytest.raises(ValueError):
        build_scenario(3, 0)


def test_best_attempt_counts() -> None:
    retake_to_pass = [attempt("genai-fundamentals", 1, 72), attempt("genai-fundamentals", 2, 91)]
    worse_retake = [attempt("teaching-with-ai", 1, 85), attempt("teaching-with-ai", 2, 60)]
    third = [attempt("future-classroom", 1, 80)]
    assert best_scores(retake_to_pass + worse_retake) == {"genai-fundamentals": 91, "teaching-with-ai": 85}
    assert is_certified(retake_to_pass + worse_retake + third)
    assert not is_certified(retake_to_pass + worse_retake)
    assert not is_certified([*retake_to_pass, *worse_retake, attempt("future-classroom", 1, 79)])


def test_outcome_groups_are_realistic(pilot: Scenario) -> None:
    certified = [e for e in pilot.educators if e.certified]
    assert all(min(e.best_scores().values()) >= MIN_SCORE for e in certified)
    via_retake = [e for e in certified if any(a.score < MIN_SCORE for a in e.attempts)]
    assert 20 <= len(via_retake) < len(certified) / 2

    below = [e for e in pilot.educators if e.completed_all and not e.certified]
    assert len(below) == 1698 - 580
    assert all(min(e.best_scores().values()) < MIN_SCORE for e in below)
    assert any(79 in e.best_scores().values() for e in below)
    stuck_retakes = [
        e
        for e in below
        if any(sum(1 for a in e.attempts if a.course_id == c) > 1 and e.best_scores()[c] < MIN_SCORE for c in COURSES)
    ]
    assert stuck_retakes

    rest = [e for e in pilot.educators if not e.completed_all]
    assert len(rest) == 2054 - 1698
    partial = [e for e in rest if e.attempts]
    assert 0 < len(partial) < len(rest)
    assert all(1 <= len(e.best_scores()) <= 2 for e in partial)


def test_registrations_and_completions_are_in_time_order(pilot: Scenario) -> None:
    now = datetime.now(UTC)
    for e in pilot.educators:
        assert datetime(2025, 2, 1, tzinfo=UTC) <= e.registered_at < datetime(2025, 7, 1, tzinfo=UTC)
        times = [a.completed_at for a in e.attempts]
        assert times == sorted(times)
        assert all(e.registered_at < t < now for t in times)
        for course in COURSES:
            numbers = [a.attempt for a in e.attempts if a.course_id == course]
            assert numbers == list(range(1, len(numbers) + 1))


def test_people_look_like_the_pilot(pilot: Scenario) -> None:
    per_institution = Counter((e.institution, e.email.lower()) for e in pilot.educators)
    assert max(per_institution.values()) == 1
    assert len({e.email.lower() for e in pilot.educators}) == 2054
    for e in pilot.educators[:200]:
        patronymic, given = e.full_name.split(" ")
        assert all("А" <= ch <= "я" or ch in "ӨөҮүЁё-" for ch in patronymic + given), e.full_name
        assert e.email.isascii() and "@" in e.email
    languages = Counter(e.language for e in pilot.educators)
    assert languages["mn"] > 0.75 * 2054 and languages["en"] > 0 and languages["ru"] > 0
    roles = Counter(e.role for e in pilot.educators)
    assert roles["master_teacher"] == 22
    assert any(e.email.endswith("@must.edu.mn") for e in pilot.educators)
    assert all(INSTITUTION_CODE_RE.fullmatch(e.institution) for e in pilot.educators)


def test_duplicate_deliveries_are_existing_events(pilot: Scenario) -> None:
    ids = {a.event_id for e in pilot.educators for a in e.attempts}
    assert 0 < len(pilot.duplicate_event_ids) <= 30
    assert set(pilot.duplicate_event_ids) <= ids
    assert len(set(pilot.duplicate_event_ids)) == len(pilot.duplicate_event_ids)


def test_course_completed_event_follows_the_contract(pilot: Scenario) -> None:
    educator = next(e for e in pilot.educators if e.attempts)
    first = educator.attempts[0]
    event = course_completed_event(educator, first, "edu-123")
    raw = event.to_json_bytes()
    spec, parsed = parse_event(raw, event_subject(educator.institution, "course_completed"))
    assert spec.type == "org.iioe.learning.course_completed.v1"
    body = json.loads(raw)
    assert body["id"] == first.event_id and body["subject"] == "edu-123"
    assert body["source"] == f"urn:iioe:partner:{educator.institution}-lms"
    assert body["datacontenttype"] == "application/json" and body["specversion"] == "1.0"
    assert body["data"]["score"] == first.score and body["data"]["course_id"] == first.course_id
    assert parsed.time == first.completed_at
    # a re-run sends byte-identical events
    assert course_completed_event(educator, first, "edu-123").to_json_bytes() == raw
    from iioe.envelope import event_headers

    headers = event_headers(event)
    assert headers["Nats-Msg-Id"] == first.event_id and headers["Content-Type"] == CONTENT_TYPE


def test_registration_body_is_the_contract_command(pilot: Scenario) -> None:
    body = pilot.educators[0].registration_body()
    assert set(body) == {"full_name", "email", "language", "role", "registered_at"}
    assert datetime.fromisoformat(body["registered_at"]).utcoffset() == timedelta(hours=8)


def summary(regs: dict[str, int], **totals: int) -> AnalyticsSummary:
    rows = [
        {
            "institution": code,
            "educators_registered": n,
            "course_completions": 0,
            "educators_completed_programme_courses": 0,
            "certificates_issued": 0,
            "master_teachers": 0,
        }
        for code, n in regs.items()
    ]
    base = dict.fromkeys(
        (
            "course_completions",
            "educators_completed_programme_courses",
            "certificates_issued",
            "master_teachers",
        ),
        0,
    )
    return AnalyticsSummary.model_validate(
        {
            **base,
            "educators_registered": sum(regs.values()),
            "institutions_active": sum(1 for n in regs.values() if n),
            **totals,
            "by_institution": rows,
        }
    )


def test_compare_uses_deltas_against_the_baseline() -> None:
    s = build_scenario(11, 40)
    new = [e.key for e in s.educators]
    before = summary({"must": 5, "zz-other": 3})
    expected = expected_delta(s, new, before)
    assert expected.institutions_active == 37  # must was already active

    truth = s.ground_truth()
    after_rows = Counter({"must": 5, "zz-other": 3}) + Counter(
        {r.institution: r.educators_registered for r in truth.by_institution}
    )
    after = AnalyticsSummary.model_validate(
        {
            "educators_registered": 8 + 40,
            "institutions_active": 2 + 37,
            "course_completions": truth.course_completions,
            "educators_completed_programme_courses": truth.educators_completed_programme_courses,
            "certificates_issued": truth.certificates_issued,
            "master_teachers": truth.master_teachers,
            "by_institution": [
                {
                    "institution": code,
                    "educators_registered": n,
                    **{
                        m: getattr(next((r for r in truth.by_institution if r.institution == code), None), m, 0)
                        for m in (
                            "course_completions",
                            "educators_completed_programme_courses",
                            "certificates_issued",
                            "master_teachers",
                        )
                    },
                }
                for code, n in after_rows.items()
            ],
        }
    )
    result = compare(expected, before, after)
    assert result.ok, render_table(result)

    off = after.model_copy(update={"certificates_issued": (after.certificates_issued or 0) + 1})
    bad = compare(expected, before, off)
    assert not bad.ok and [r.metric for r in bad.rows if not r.ok] == ["certificates_issued"]
    assert "NO" in render_table(bad)


def test_rerun_expects_zero_delta_and_missing_metrics_fail() -> None:
    s = build_scenario(11, 40)
    before = summary({"must": 5})
    expected = expected_delta(s, [], before)
    assert expected.model_dump(exclude={"by_institution"}) == dict.fromkeys(
        (
            "educators_registered",
            "institutions_active",
            "course_completions",
            "educators_completed_programme_courses",
            "certificates_issued",
            "master_teachers",
        ),
        0,
    )
    assert compare(expected, before, before).ok
    partial = AnalyticsSummary.model_validate({"educators_registered": 5, "by_institution": []})
    result = compare(expected, before, partial)
    assert not result.ok
    assert next(r for r in result.rows if r.metric == "master_teachers").actual is None


def iioe(*args: str) -> subprocess.CompletedProcess[str]:
    """The `iioe` command as a user runs it: its own process, so its logging setup stays its own."""
    return subprocess.run(
        [sys.executable, "-m", "iioe_tools.cli.main", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_dry_run_cli() -> None:
    result = iioe("simulate", "--dry-run", "--educators", "120", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["ground_truth"]["educators_registered"] == 120
    lead = {m["month"]: m["lead_rank"] for m in out["months"]}
    assert lead["2025-03"] == 1 and lead["2025-04"] == 1
    result = iioe("simulate", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "1,698" in result.stdout and "580" in result.stdout and "must rank 1" in result.stdout


def test_unreachable_analytics_exits_2() -> None:
    result = iioe(
        "simulate", "--educators", "40", "--analytics-url", "http://127.0.0.1:9", "--nats-url", "nats://127.0.0.1:9"
    )
    assert result.returncode == 2
    assert "analytics service at http://127.0.0.1:9 is unreachable" in result.stderr
