"""The programme activity (contract §9–10): generation, its ground truth, its events and the comparison."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from typing import Any

import httpx
import pytest

from iioe.envelope import CONTENT_TYPE, event_headers
from iioe.parsing import parse_event
from iioe_tools.simulation import COURSES, Scenario, build_scenario
from iioe_tools.simulation.compare import (
    AnalyticsSummary,
    Comparison,
    compare,
    expected_delta,
    render_table,
    wait_until_equal,
)
from iioe_tools.simulation.compare_programme import (
    CascadeReport,
    fetch_cascade,
    programme_check,
    programme_rows,
    with_promotions,
)
from iioe_tools.simulation.programme_activity import (
    REGIONS,
    ProgrammeActivity,
    ProgrammeTruth,
    build_programme_activity,
)
from iioe_tools.simulation.programme_driver import encode, event_waves


@pytest.fixture(scope="module")
def pilot() -> Scenario:
    return build_scenario(2025)


@pytest.fixture(scope="module")
def activity(pilot: Scenario) -> ProgrammeActivity:
    return build_programme_activity(pilot)


def fake_ids(activity: ProgrammeActivity) -> dict[str, str]:
    return {k: f"edu-{k}" for k in activity.profiles}


# --- generation ------------------------------------------------------------------------------------


def test_same_seed_same_programme_other_seed_other_programme(pilot: Scenario, activity: ProgrammeActivity) -> None:
    again = build_programme_activity(build_scenario(2025))
    assert again == activity
    assert again.ground_truth() == activity.ground_truth()
    other = build_programme_activity(build_scenario(2026))
    assert {s.session_id for s in other.sessions}.isdisjoint({s.session_id for s in activity.sessions})
    assert {r.event_id for r in other.ratings}.isdisjoint({r.event_id for r in activity.ratings})


def test_programme_leaves_the_scenario_as_it_was(pilot: Scenario) -> None:
    """Its own random stream: the registrations and completions a seed plays do not change."""
    fresh = build_scenario(2025)
    build_programme_activity(fresh)
    assert fresh == pilot and fresh.ground_truth().master_teachers == 22


def test_pilot_master_teachers_train_regionally(activity: ProgrammeActivity) -> None:
    originals = [k for k, p in activity.profiles.items() if p.role == "master_teacher"]
    assert len(originals) == 22
    per_teacher = Counter(s.master_teacher for s in activity.sessions if s.generation == 1)
    assert set(per_teacher) == set(originals) and all(3 <= n <= 7 for n in per_teacher.values())
    assert {s.region for s in activity.sessions} <= REGIONS
    assert len({s.region for s in activity.sessions}) >= 15  # sessions reach many aimags and districts
    assert any(r.endswith("aimag") for r in (s.region for s in activity.sessions))
    assert any(r.endswith("Ulaanbaatar") for r in (s.region for s in activity.sessions))
    modes = Counter(s.mode for s in activity.sessions)
    assert set(modes) == {"online", "face_to_face", "hybrid"}
    assert modes["face_to_face"] > modes["hybrid"]
    for s in activity.sessions:
        teacher = activity.profiles[s.master_teacher]
        assert s.institution == teacher.institution
        assert s.held_on >= date(2025, 7, 1) and s.held_on < date(2026, 11, 1)
        last = teacher.last_activity
        assert last is not None and s.held_on > last.date()  # trains after finishing the courses
    assert Counter(s.language for s in activity.sessions).most_common(1)[0][0] == "mn"


def test_trainees_attend_on_their_own_institution_subject(activity: ProgrammeActivity) -> None:
    sessions = {s.session_id: s for s in activity.sessions}
    masters = set(activity.master_teachers())
    pairs = [(a.session_id, a.trainee) for a in activity.attendances]
    assert len(pairs) == len(set(pairs))  # one attendance per trainee and session
    cross = 0
    for a in activity.attendances:
        session = sessions[a.session_id]
        assert a.institution == activity.profiles[a.trainee].institution
        assert a.trainee != session.master_teacher
        assert activity.profiles[a.trainee].role == "educator"  # pilot master teachers never attend
        assert a.held_on == session.held_on
        cross += a.institution != session.institution
        if session.generation == 2:
            assert a.trainee not in masters
    assert 0.2 < cross / len(activity.attendances) < 0.6  # many from other institutions
    per_trainee = Counter(a.trainee for a in activity.attendances)
    assert any(n > 1 for n in per_trainee.values())  # some attend twice: trainees are distinct people


def test_a_few_certified_trainees_become_master_teachers_and_train_others(activity: ProgrammeActivity) -> None:
    assert len(activity.promotions) == 6
    gen1 = {s.session_id: s for s in activity.sessions if s.generation == 1}
    first_attended: dict[str, date] = {}
    for a in activity.attendances:
        if a.session_id in gen1:
            first_attended.setdefault(a.trainee, a.held_on)
    for p in activity.promotions:
        assert activity.profiles[p].certified and activity.profiles[p].role == "educator"
        assert p in first_attended
        own = [s for s in activity.sessions if s.master_teacher == p]
        assert 1 <= len(own) <= 3 and all(s.generation == 2 and s.held_on > first_attended[p] for s in own)
    truth = activity.ground_truth()
    reach = [m for m in truth.cascade if m.second_generation_reach > 0]
    assert reach and all(m.educator_key not in activity.promotions for m in reach)


def test_ground_truth_follows_the_contract_definitions(activity: ProgrammeActivity) -> None:
    truth = activity.ground_truth()
    sessions = {s.session_id: s for s in activity.sessions}
    trainees_of: dict[str, set[str]] = defaultdict(set)
    for a in activity.attendances:
        trainees_of[sessions[a.session_id].master_teacher].add(a.trainee)
    assert truth.training_sessions == len(activity.sessions) == truth.cascade_totals.sessions
    assert truth.trainees_reached == len({a.trainee for a in activity.attendances}) == truth.cascade_totals.trainees
    assert len(truth.cascade) == 28 and truth.promoted == 6
    assert sum(m.sessions for m in truth.cascade) == truth.training_sessions
    for m in truth.cascade:
        trainees = trainees_of[m.educator_key]
        assert m.trainees == len(trainees)
        assert m.trainees_certified == sum(activity.profiles[t].certified for t in trainees)
        assert m.trainees_certified <= m.trainees_completed <= m.trainees
        promoted = trainees & set(activity.promotions)
        assert m.second_generation_reach == len(set().union(*(trainees_of[p] for p in promoted)) - {m.educator_key})
    assert truth.cascade_totals.trainees_certified == sum(
        activity.profiles[t].certified for t in {a.trainee for a in activity.attendances}
    )
    assert truth.promoted_by_institution == dict(
        sorted(Counter(activity.profiles[p].institution for p in activity.promotions).items())
    )


def test_about_30_percent_of_completers_integrate_ai_and_the_latest_report_counts(
    activity: ProgrammeActivity,
) -> None:
    completers = [k for k, p in activity.profiles.items() if p.completed_all]
    assert len(completers) == 1698
    truth = activity.ground_truth()
    assert truth.educators_integrating_ai == 509  # 30 % of 1,698, rounded
    reports: dict[str, list[Any]] = defaultdict(list)
    for r in activity.practice:
        assert activity.profiles[r.educator].completed_all
        reports[r.educator].append(r)
    changed = [rs for rs in reports.values() if len({r.integrates_ai for r in rs}) > 1]
    assert any(rs[-1].integrates_ai for rs in changed) and any(not rs[-1].integrates_ai for rs in changed)
    for rs in reports.values():
        assert [r.order for r in rs] == list(range(len(rs)))
        assert all(a.reported_on < b.reported_on for a, b in itertools.pairwise(rs))
    # counting the first reports instead of the latest would give another figure
    assert sum(rs[0].integrates_ai for rs in reports.values()) != truth.educators_integrating_ai
    integrating = {k for k, rs in reports.items() if rs[-1].integrates_ai}
    entries = Counter(e.educator for e in activity.portfolio)
    assert integrating <= set(entries) and all(1 <= entries[k] <= 4 for k in integrating)
    assert {e.kind for e in activity.portfolio} == {"lesson_plan", "syllabus_change", "teaching_artefact", "reflection"}


def test_over_90_percent_of_course_ratings_are_high(activity: ProgrammeActivity) -> None:
    truth = activity.ground_truth()
    assert truth.course_ratings == len(activity.ratings) > 3000
    assert 0.90 < truth.courses_rated_highly / truth.course_ratings < 0.95
    assert truth.courses_rated_highly == sum(
        r.content_rating >= 4 and r.usefulness_rating >= 4 for r in activity.ratings
    )
    pairs = [(r.educator, r.course_id) for r in activity.ratings]
    assert len(pairs) == len(set(pairs))  # one evaluation per educator and course
    for r in activity.ratings:
        profile = activity.profiles[r.educator]
        assert r.course_id in profile.completions and r.evaluated_at > profile.completions[r.course_id]
        assert r.language == profile.language and 1 <= min(r.content_rating, r.usefulness_rating)
    assert {r.course_id for r in activity.ratings} == set(COURSES)


@pytest.mark.parametrize("size", [60, 300, 1000])
def test_small_programmes_still_have_every_figure(size: int) -> None:
    a = build_programme_activity(build_scenario(size + 1, size))
    truth = a.ground_truth()
    assert truth.promoted >= 1 and truth.training_sessions >= 4 and truth.trainees_reached > 0
    assert truth.course_ratings and truth.courses_rated_highly / truth.course_ratings > 0.9
    completers = sum(p.completed_all for p in a.profiles.values())
    assert truth.educators_integrating_ai == (2 * 3 * completers + 10) // 20
    assert any(m.second_generation_reach for m in truth.cascade)
    assert len(a.duplicate_event_ids) >= 1


def test_a_pilot_without_master_teachers_has_no_cascade() -> None:
    """40 educators scale the 22 master teachers to 0: nobody trains, the rest still happens."""
    a = build_programme_activity(build_scenario(41, 40))
    truth = a.ground_truth()
    assert not a.master_teachers() and truth.training_sessions == truth.promoted == 0 and truth.cascade == []
    assert truth.course_ratings > 0 and truth.educators_integrating_ai > 0


def test_ground_truth_of_new_educators_only(activity: ProgrammeActivity) -> None:
    nothing = activity.ground_truth(set())
    assert nothing.cascade == [] and nothing.promoted == 0
    assert nothing.model_dump(exclude={"cascade", "cascade_totals", "promoted_by_institution"}) == dict.fromkeys(
        (
            *("promoted", "training_sessions", "trainees_reached", "educators_integrating_ai", "course_ratings"),
            *("courses_rated_highly", "portfolio_entries", "practice_reports"),
        ),
        0,
    )
    assert activity.ground_truth(set(activity.profiles)) == activity.ground_truth()


# --- events ----------------------------------------------------------------------------------------


def test_programme_events_follow_the_contract(activity: ProgrammeActivity) -> None:
    ids = fake_ids(activity)
    waves, skipped = event_waves(activity, ids)
    assert skipped == 0 and len(waves) == 3
    events = [e for wave in waves for e in wave]
    assert len(events) == activity.event_count() == len({e.id for e in events})
    seen: Counter[str] = Counter()
    for event in events:
        subject, payload, headers = encode(event)
        spec, parsed = parse_event(payload, subject)  # the platform's own parser accepts it
        seen[spec.type] += 1
        assert headers["Nats-Msg-Id"] == event.id and headers["Content-Type"] == CONTENT_TYPE
        assert subject == f"iioe.events.{parsed.data.institution}.{spec.name}.v1"
        body = json.loads(payload)
        assert body["source"].startswith(f"urn:iioe:partner:{parsed.data.institution}-")
        assert body["subject"] in ids.values()
    assert seen == {
        "org.iioe.cascade.training_session_held.v1": len(activity.sessions),
        "org.iioe.cascade.trainee_attended.v1": len(activity.attendances),
        "org.iioe.portfolio.entry_added.v1": len(activity.portfolio),
        "org.iioe.portfolio.practice_integration_reported.v1": len(activity.practice),
        "org.iioe.learning.course_evaluated.v1": len(activity.ratings),
    }
    # cause before effect: sessions first, the later practice reports last
    assert {e.type for e in waves[0]} == {"org.iioe.cascade.training_session_held.v1"}
    assert {e.id for e in waves[2]} == {r.event_id for r in activity.practice if r.order == 1}
    # a re-run sends byte-identical events
    again, _ = event_waves(activity, ids)
    assert [e.to_json_bytes() for w in again for e in w] == [e.to_json_bytes() for e in events]
    assert event_headers(events[0])["Nats-Msg-Id"] == events[0].id


def test_attendance_goes_to_the_trainees_institution(activity: ProgrammeActivity) -> None:
    ids = fake_ids(activity)
    sessions = {s.session_id: s for s in activity.sessions}
    waves, _ = event_waves(activity, ids)
    attended = [e for e in waves[1] if e.type == "org.iioe.cascade.trainee_attended.v1"]
    across = [e for e in attended if e.data.institution != sessions[e.data.session_id].institution]
    assert across
    for e in across:
        assert encode(e)[0] == f"iioe.events.{e.data.institution}.trainee_attended.v1"


def test_events_of_unregistered_educators_are_skipped(activity: ProgrammeActivity) -> None:
    teacher = activity.sessions[0].master_teacher
    ids = {k: v for k, v in fake_ids(activity).items() if k != teacher}
    waves, skipped = event_waves(activity, ids)
    own_sessions = {s.session_id for s in activity.sessions if s.master_teacher == teacher}
    expected = len(own_sessions) + sum(1 for a in activity.attendances if a.session_id in own_sessions)
    expected += sum(
        1 for group in (activity.portfolio, activity.practice, activity.ratings) for e in group if e.educator == teacher
    )
    assert skipped == expected and sum(map(len, waves)) == activity.event_count() - expected


# --- comparison ------------------------------------------------------------------------------------


def analytics_after(
    truth: ProgrammeTruth, ids: dict[str, str], base: int = 0
) -> tuple[AnalyticsSummary, CascadeReport]:
    """What a correct analytics service reports, on top of `base` in every figure."""
    summary = AnalyticsSummary.model_validate(
        {
            "training_sessions": base + truth.training_sessions,
            "trainees_reached": base + truth.trainees_reached,
            "educators_integrating_ai": base + truth.educators_integrating_ai,
            "course_ratings": base + truth.course_ratings,
            "courses_rated_highly": base + truth.courses_rated_highly,
            "by_institution": [],
        }
    )
    cascade = CascadeReport.model_validate(
        {
            "master_teachers": [
                {"educator_id": ids[m.educator_key], **m.model_dump(exclude={"educator_key"})} for m in truth.cascade
            ]
            + [{"educator_id": "someone-else", "institution": "must", "sessions": 9, "trainees": 99}],
            "totals": {k: base + v for k, v in truth.cascade_totals.model_dump().items()},
        }
    )
    return summary, cascade


def test_programme_rows_compare_deltas(activity: ProgrammeActivity) -> None:
    truth = activity.ground_truth()
    ids = fake_ids(activity)
    before_summary, before_cascade = analytics_after(activity.ground_truth(set()), ids, 7)
    after_summary, after_cascade = analytics_after(truth, ids, 7)
    rows = programme_rows(truth, ids, before_summary, after_summary, before_cascade, after_cascade)
    assert all(r.ok for r in rows), [r for r in rows if not r.ok]
    assert [r.metric for r in rows] == [
        "training_sessions",
        "trainees_reached",
        "educators_integrating_ai",
        "course_ratings",
        "courses_rated_highly",
        "cascade.master_teachers",
        "cascade.sessions",
        "cascade.trainees",
        "cascade.trainees_completed",
        "cascade.trainees_certified",
        "cascade.second_generation_reach",
        "cascade.totals.sessions",
        "cascade.totals.trainees",
        "cascade.totals.trainees_certified",
    ]
    row = next(r for r in rows if r.metric == "trainees_reached")
    assert (row.before, row.after) == (7, 7 + truth.trainees_reached)
    assert row.expected == row.actual == truth.trainees_reached

    # one master teacher's second-generation reach is off by one
    wrong = after_cascade.model_copy(deep=True)
    wrong.master_teachers[0].second_generation_reach = (wrong.master_teachers[0].second_generation_reach or 0) + 1
    bad = [r for r in programme_rows(truth, ids, before_summary, after_summary, before_cascade, wrong) if not r.ok]
    assert [r.metric for r in bad] == ["cascade.second_generation_reach"]
    assert f"{len(truth.cascade) - 1}/{len(truth.cascade)} equal" in str(bad[0].actual)
    assert wrong.master_teachers[0].educator_id in str(bad[0].actual)

    # ratings counted per attempt instead of per evaluation would be caught
    more = AnalyticsSummary.model_validate({**after_summary.model_dump(), "course_ratings": truth.course_ratings + 8})
    bad = [r for r in programme_rows(truth, ids, before_summary, more, before_cascade, after_cascade) if not r.ok]
    assert [r.metric for r in bad] == ["course_ratings"]


def test_missing_figures_and_endpoint_are_mismatches(activity: ProgrammeActivity) -> None:
    truth = activity.ground_truth()
    ids = fake_ids(activity)
    old = AnalyticsSummary.model_validate({"educators_registered": 3, "by_institution": []})
    rows = programme_rows(truth, ids, old, old, None, None)
    assert not any(r.ok for r in rows)
    assert all(r.actual is None for r in rows)
    assert "missing" in render_table(Comparison(ok=False, rows=rows))


def test_rerun_expects_nothing_new(activity: ProgrammeActivity) -> None:
    ids = fake_ids(activity)
    summary, cascade = analytics_after(activity.ground_truth(), ids, 3)
    nothing = activity.ground_truth(set())
    rows = programme_rows(nothing, ids, summary, summary, cascade, cascade)
    assert all(r.ok for r in rows)
    assert next(r for r in rows if r.metric == "cascade.master_teachers").expected == "0 listed"


def test_promotions_add_master_teachers_per_institution(pilot: Scenario, activity: ProgrammeActivity) -> None:
    base = expected_delta(pilot, [e.key for e in pilot.educators], AnalyticsSummary.model_validate({}))
    truth = activity.ground_truth()
    grown = with_promotions(base, truth)
    assert grown.master_teachers == base.master_teachers + 6 == 28
    for row in grown.by_institution:
        before = next(r for r in base.by_institution if r.institution == row.institution)
        assert row.master_teachers == before.master_teachers + truth.promoted_by_institution.get(row.institution, 0)
    assert base.master_teachers == 22  # the original is not modified
    # an analytics service that counts roles at registration only is caught
    after = AnalyticsSummary.model_validate(
        {
            **{m: getattr(base, m) for m in ("educators_registered", "institutions_active", "course_completions")},
            **{m: getattr(base, m) for m in ("educators_completed_programme_courses", "certificates_issued")},
            "master_teachers": 22,
            "by_institution": [r.model_dump() for r in base.by_institution],
        }
    )
    result = compare(grown, AnalyticsSummary.model_validate({}), after)
    assert {r.metric for r in result.rows if not r.ok} == {"master_teachers", "by_institution.master_teachers"}


async def test_wait_until_equal_polls_the_cascade_through_the_hook(activity: ProgrammeActivity) -> None:
    """Analytics catches up on the second poll; the programme rows join the table."""
    pilot_scenario = build_scenario(31, 40)
    small = build_programme_activity(pilot_scenario)
    ids = fake_ids(small)
    truth = small.ground_truth()
    expected = with_promotions(expected_delta(pilot_scenario, list(ids), AnalyticsSummary.model_validate({})), truth)
    summary_after, cascade_after = analytics_after(truth, ids)
    legacy = {
        m: getattr(expected, m)
        for m in (
            *("educators_registered", "institutions_active", "course_completions"),
            *("educators_completed_programme_courses", "certificates_issued", "master_teachers"),
        )
    }
    full = {**summary_after.model_dump(), **legacy, "by_institution": [r.model_dump() for r in expected.by_institution]}
    polls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        polls[request.url.path] += 1
        caught_up = polls["/v1/analytics/summary"] > 1
        if request.url.path == "/v1/analytics/summary":
            return httpx.Response(200, json=full if caught_up else {"by_institution": []})
        if request.url.path == "/v1/analytics/cascade":
            return httpx.Response(
                200, content=cascade_after.model_dump_json() if caught_up else b'{"master_teachers": []}'
            )
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://a") as client:
        before = AnalyticsSummary.model_validate({})
        assert await fetch_cascade(client, "http://a/nothing") is None  # 404: no such endpoint
        check = programme_check(client, "http://a", truth, ids, before, None)
        comparison, _ = await wait_until_equal(
            client, "http://a", expected, before, timeout=10, interval=0.01, settle=0.0, extend=check
        )
    assert comparison.ok, render_table(comparison)
    assert "cascade.second_generation_reach" in render_table(comparison)
    assert polls["/v1/analytics/cascade"] >= 2


DRY_RUN_SIZE = ("--educators", "120", "--seed", "5")


def test_dry_run_shows_the_programme_the_same_in_every_process() -> None:
    """Deterministic across processes (string hashing is randomised per process; nothing may depend on it)."""
    outs = []
    for hash_seed in ("1", "2"):
        run = subprocess.run(
            [sys.executable, "-m", "iioe_tools.cli.main", *("simulate", "--dry-run", "--json"), *DRY_RUN_SIZE],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=os.environ | {"PYTHONHASHSEED": hash_seed},
        )
        assert run.returncode == 0, run.stderr
        outs.append(json.loads(run.stdout))
    assert outs[0]["programme"] == outs[1]["programme"]
    scenario = build_scenario(5, 120)
    programme = build_programme_activity(scenario).ground_truth()
    assert outs[0]["programme"] == programme.model_dump()
    assert outs[0]["ground_truth"]["master_teachers"] == scenario.ground_truth().master_teachers + programme.promoted
